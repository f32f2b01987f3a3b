package procexec

import "strings"

// toValidUTF8 copies a line into a string, replacing invalid UTF-8 (the
// transcript is text; a line split at 64 KiB can also cut a character).
func toValidUTF8(b []byte) string {
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
