// Package errchain describes an error chain without any of its texts. It is
// a pure helper (no HTTP, no domain) so that the domain packages and both
// HTTP servers can share it.
package errchain

import (
	"errors"
	"fmt"
	"strings"
)

// Types names the types of err and of every error it wraps, outermost
// first, joined by " <- ": enough to find a failure without logging text
// that may hold paths (os errors do). It returns "" for a nil err.
func Types(err error) string {
	var b strings.Builder
	for err != nil {
		if b.Len() > 0 {
			b.WriteString(" <- ")
		}
		fmt.Fprintf(&b, "%T", err)
		err = errors.Unwrap(err)
	}
	return b.String()
}
