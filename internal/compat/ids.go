package compat

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The id prefixes. They are part of the public identity of local Workers and
// hosts: existing clients and bookmarks hold ids built with them.
const (
	hostIDPrefix   = "local-"
	workerIDPrefix = "local-worker-"
)

// digestLen is the number of hex characters of sha256(v) that end every
// bounded id; they keep two names that map to the same body apart.
const digestLen = 16

// Bounded projects an arbitrary store name v to a public id: prefix, a
// readable body derived from v, '-', and the first 16 hex characters of
// sha256(v). The body keeps ASCII letters (lower-cased), digits, '-' and '_';
// every other code point, and every invalid UTF-8 byte, becomes '-'; leading
// and trailing '-' are trimmed and an empty body becomes "id". A body longer
// than 120 − len(prefix) − 17 is cut to that budget and trimmed again.
//
// The digest is taken over the raw v, so names that differ only in case or
// punctuation still get distinct ids. The result is at most 120 characters and
// a valid registry id whenever prefix is itself made of id characters and no
// longer than 101 bytes (the prefixes of this package are).
func Bounded(prefix, v string) string {
	var b strings.Builder
	b.Grow(len(v))
	// Ranging over a string yields utf8.RuneError for each invalid byte, one
	// byte at a time, so invalid bytes become one '-' each like any other
	// code point outside the kept set.
	for _, r := range v {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case 'A' <= r && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteByte('-')
		}
	}
	body := trimBody(b.String())
	// The body is pure ASCII here, so cutting by bytes cuts by characters.
	if budget := registry.MaxIDLength - len(prefix) - 1 - digestLen; len(body) > budget {
		body = trimBody(body[:max(budget, 0)])
	}
	sum := sha256.Sum256([]byte(v))
	return prefix + body + "-" + hex.EncodeToString(sum[:])[:digestLen]
}

func trimBody(s string) string {
	s = strings.Trim(s, "-")
	if s == "" {
		return "id"
	}
	return s
}

// HostIDFor returns the host id of the workspace workspaceID:
// Bounded("local-", workspaceID).
func HostIDFor(workspaceID string) registry.HostID {
	return registry.HostID(Bounded(hostIDPrefix, workspaceID))
}

// WorkerIDFor returns the worker id of the pod directory podName:
// Bounded("local-worker-", podName). The id is derived from the directory, not
// from the metadata inside it, so it stays stable when the metadata changes.
func WorkerIDFor(podName string) registry.WorkerID {
	return registry.WorkerID(Bounded(workerIDPrefix, podName))
}
