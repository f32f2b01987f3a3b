package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
)

// idPattern is the id rule of the contract, written independently of ValidID.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,120}$`)

// FuzzValidID checks ValidID against the contract's pattern and every Parse*
// function against ValidID: a valid id parses to itself, anything else is an
// invalid_identifier error naming the field, and nothing panics.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{
		"", "a", "local-worker-runtime", "A:b_c-9", "has space", "ü", "a/b", "../x", "a\x00b",
		strings.Repeat("x", 120), strings.Repeat("x", 121), "\xff", "id\n",
	} {
		f.Add(s, "worker-1")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		valid := registry.ValidID(s)
		if valid != idPattern.MatchString(s) {
			t.Fatalf("ValidID(%q) = %v, pattern says %v", s, valid, !valid)
		}
		check := func(field string, got string, err error) {
			t.Helper()
			if valid {
				if err != nil || got != s {
					t.Fatalf("parsing valid %s %q: %q, %v", field, s, got, err)
				}
				return
			}
			var e *registry.Error
			if !errors.As(err, &e) || e.Code != registry.CodeInvalidIdentifier || e.Field != field || got != "" {
				t.Fatalf("parsing invalid %s %q: %q, %v", field, s, got, err)
			}
			// The detail is fixed text per field: it never echoes the input.
			if want := fixedDetail(field); e.Detail != want {
				t.Fatalf("detail %q differs from the fixed text %q", e.Detail, want)
			}
		}
		r, err := registry.ParseRuntimeID(s)
		check("runtime_id", string(r), err)
		h, err := registry.ParseHostID(s)
		check("host_id", string(h), err)
		w, err := registry.ParseWorkerID(s)
		check("worker_id", string(w), err)

		ref, err := registry.ParseWorkerRef(s, other)
		otherValid := registry.ValidID(other)
		switch {
		case valid && otherValid:
			if err != nil || ref.RuntimeID != registry.RuntimeID(s) || ref.WorkerID != registry.WorkerID(other) {
				t.Fatalf("ParseWorkerRef(%q, %q) = %+v, %v", s, other, ref, err)
			}
		case !valid:
			if registry.ErrorCode(err) != registry.CodeInvalidIdentifier || ref != (registry.WorkerRef{}) {
				t.Fatalf("ParseWorkerRef(%q, %q) = %+v, %v", s, other, ref, err)
			}
		default:
			var e *registry.Error
			if !errors.As(err, &e) || e.Code != registry.CodeInvalidIdentifier || e.Field != "worker_id" {
				t.Fatalf("ParseWorkerRef(%q, %q) = %+v, %v", s, other, ref, err)
			}
		}
	})
}

// fixedDetail is the detail of an invalid id for field.
func fixedDetail(field string) string {
	var err error
	switch field {
	case "runtime_id":
		_, err = registry.ParseRuntimeID("!")
	case "host_id":
		_, err = registry.ParseHostID("!")
	default:
		_, err = registry.ParseWorkerID("!")
	}
	var e *registry.Error
	errors.As(err, &e)
	return e.Detail
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// FuzzRuntimeWorkersCursor feeds arbitrary cursors and limits to
// Registry.RuntimeWorkers: the only answers are a page or invalid_request,
// nothing panics, and a page is a real page of the Runtime (ids after the
// cursor's position, in order, within the limit).
func FuzzRuntimeWorkersCursor(f *testing.F) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []string{
		"", enc("c1|rt|w-03"), enc("c1|other|w-03"), enc("c2|rt|w-03"), enc("c1|rt|"), enc("c1|rt|bad id"),
		enc("c1|rt|w-03|x"), enc("c1rtw-03"), "!!!", "YQ==", enc("c1|rt|" + strings.Repeat("z", 121)), "\xff\xfe",
	} {
		f.Add(c, 2)
	}
	f.Add("", 0)
	f.Add("", -1)
	f.Add("", 201)
	reg, err := registry.New(registry.Options{WorkspaceID: "ws", Auditor: registry.SlogAuditor{Logger: discardLogger()}},
		registrytest.New("rt", "w-01", "w-02", "w-03", "w-04", "w-05", "w-06", "w-07"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		list, err := reg.RuntimeWorkers(context.Background(), "rt", limit, cursor)
		if err != nil {
			var e *registry.Error
			if !errors.As(err, &e) || e.Code != registry.CodeInvalidRequest || (e.Field != "cursor" && e.Field != "limit") {
				t.Fatalf("RuntimeWorkers(%q, %d) error %v, want invalid_request on cursor or limit", cursor, limit, err)
			}
			if e.Field == "cursor" && cursor == "" {
				t.Fatalf("empty cursor refused: %v", err)
			}
			return
		}
		if limit < 0 || limit > registry.DefaultMaxRecords {
			t.Fatalf("limit %d accepted", limit)
		}
		if len(list.Items) > list.Limit || list.Limit < 1 {
			t.Fatalf("page of %d items for limit %d", len(list.Items), list.Limit)
		}
		for i, w := range list.Items {
			if i > 0 && list.Items[i-1].ID >= w.ID {
				t.Fatalf("items out of order: %v", list.Items)
			}
		}
		if list.NextCursor != "" {
			// The cursor the registry made is always accepted.
			if _, err := reg.RuntimeWorkers(context.Background(), "rt", list.Limit, list.NextCursor); err != nil {
				t.Fatalf("next cursor %q refused: %v", list.NextCursor, err)
			}
		}
	})
}
