package compat

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"reflect"
	"slices"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// cacheSeed is an encoded cache of a few records of every shape.
func cacheSeed(print [sha256.Size]byte) []byte {
	role, profile := "coder", "fast"
	recs := map[string]*podRecord{}
	var names []string
	for i, e := range []*entry{
		{hint: "a", status: stMetadataOnly, visible: true},
		{hint: "b", label: "other name", role: &role, profile: &profile, status: stActiveSegment, visible: true},
		{hint: "c", status: stActivePendingSegment},
		{hint: "d", role: &role, visible: true},
	} {
		name := e.hint
		e.id = WorkerIDFor(name)
		rec := &podRecord{name: name, dirType: fs.ModeDir, kind: recHidden, entry: e,
			key: fileKey{dev: 1, ino: uint64(100 + i), size: 42, mtime: 1e18, ctime: 1e18 + 1, mode: 0o100644}}
		if e.visible {
			rec.kind = recListed
		}
		if name == "d" {
			d := staleDiagnostic(e.id)
			rec.warn, e.diag = &d, &[1]registry.Diagnostic{d}
		}
		recs[name], names = rec, append(names, name)
	}
	return encodeCache(print, names, recs)
}

// FuzzCacheDecode feeds the index cache decoder arbitrary files (it is
// hostile input): it never panics, and whatever it accepts is a set of
// records the projection could have made (ids derived from the names,
// display strings sanitized, a regular file's key), and which encode and
// decode again to the same records.
func FuzzCacheDecode(f *testing.F) {
	var print [sha256.Size]byte
	copy(print[:], "fingerprint of the fuzzed config")
	seed := cacheSeed(print)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(encodeCache(print, nil, nil))
	f.Add([]byte(cacheMagic))
	f.Add(seed[cacheHeaderBytes : len(seed)-4])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, print)
		// The same bytes as the body of a file with a valid header and
		// checksum, so that mutations reach the record decoder.
		framed := append([]byte(cacheMagic), 1, 0, 0, 0)
		framed = append(append(framed, print[:]...), data...)
		checkDecoded(t, binary.LittleEndian.AppendUint32(framed, crc32.Checksum(framed, crcTable)), print)
	})
}

// checkDecoded decodes data and checks what it accepts.
func checkDecoded(t *testing.T, data []byte, print [sha256.Size]byte) {
	t.Helper()
	{
		recs, err := decodeCache(data, print)
		if err != nil {
			if _, ok := err.(errCache); !ok { //nolint:errorlint // decodeCache returns it bare
				t.Fatalf("error %T, want errCache", err)
			}
			return
		}
		names := make([]string, 0, len(recs))
		for name, r := range recs {
			e := r.entry
			switch {
			case r.name != name, e == nil, e.id != WorkerIDFor(name), e.hint != sanitizeDisplay(name),
				sanitizeDisplay(e.labelOrHint()) != e.labelOrHint(), e.labelOrHint() == "",
				e.role != nil && (*e.role == "" || sanitizeDisplay(*e.role) != *e.role),
				e.profile != nil && (*e.profile == "" || sanitizeDisplay(*e.profile) != *e.profile),
				(r.kind == recListed) != e.visible, r.kind != recListed && r.kind != recHidden,
				r.racy, r.retry, r.problem != "", r.dirType != fs.ModeDir:
				t.Fatalf("accepted a record the projection cannot make: %+v %+v", r, e)
			}
			names = append(names, name)
		}
		slices.Sort(names)
		again, err := decodeCache(encodeCache(print, names, recs), print)
		if err != nil || !reflect.DeepEqual(again, recs) {
			t.Fatalf("re-encoded records decode as %v, %v; want %v", again, err, recs)
		}
	}
}

func TestCacheSeedRoundTrip(t *testing.T) {
	var print [sha256.Size]byte
	seed := cacheSeed(print)
	recs, err := decodeCache(seed, print)
	if err != nil || len(recs) != 4 {
		t.Fatalf("decode = %d records, %v", len(recs), err)
	}
	if d := recs["d"]; d.warn == nil || d.entry.diag == nil || d.warn.Code != DiagMetadataStale {
		t.Errorf("stale record lost its diagnostic: %+v", d)
	}
	if b := recs["b"]; b.entry.label != "other name" || *b.entry.role != "coder" || b.entry.status != stActiveSegment {
		t.Errorf("record b = %+v", b.entry)
	}
	if _, err := decodeCache(seed, [sha256.Size]byte{1}); fmt.Sprint(err) != "fingerprint" {
		t.Errorf("another fingerprint: %v", err)
	}
}

// BenchmarkCacheDecode decodes a cache of 10,000 and of 100,000 pods
// shaped like the bench store's.
func BenchmarkCacheDecode(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var print [sha256.Size]byte
			role, profile := "coder", "fast"
			recs := make(map[string]*podRecord, n)
			names := make([]string, n)
			for i := range n {
				name := fmt.Sprintf("00001KVWECEQG%07d-Coder.Worker", i)
				e := &entry{id: WorkerIDFor(name), hint: name, role: &role, profile: &profile, visible: true, status: stActiveSegment}
				recs[name] = &podRecord{name: name, dirType: fs.ModeDir, kind: recListed, entry: e,
					key: fileKey{dev: 2049, ino: uint64(1_000_000 + i), size: 700, mtime: 1.7e18 + int64(i), ctime: 1.7e18 + int64(i), mode: 0o100644}}
				names[i] = name
			}
			slices.Sort(names)
			data := encodeCache(print, names, recs)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := decodeCache(data, print); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
