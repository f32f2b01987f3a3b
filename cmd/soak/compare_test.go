package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func view(id, label string) workerView {
	return workerView{WorkerID: id, HostID: "h", Label: label, State: "metadata_only", Status: "metadata_only"}
}

func TestCompareIndex(t *testing.T) {
	a, b, c := view("a", "A"), view("b", "B"), view("c", "C")
	bOld := view("b", "B before")
	tests := []struct {
		name             string
		listed           []workerView
		lookups          map[string]*workerView
		fresh            []workerView
		wantLost, wantSt int
	}{
		{"same", []workerView{a, b}, map[string]*workerView{"a": &a, "b": &b}, []workerView{a, b}, 0, 0},
		{"same, no lookups", []workerView{a, b}, nil, []workerView{a, b}, 0, 0},
		{"empty", nil, nil, nil, 0, 0},
		{"a pod the server never saw", []workerView{a}, map[string]*workerView{"a": &a, "b": nil}, []workerView{a, b}, 2, 0},
		{"listed, but its lookup fails", []workerView{a, b}, map[string]*workerView{"a": &a, "b": nil}, []workerView{a, b}, 1, 0},
		{"an older projection", []workerView{a, bOld}, map[string]*workerView{"a": &a, "b": &bOld}, []workerView{a, b}, 0, 2},
		{"a pod gone from the store", []workerView{a, c}, map[string]*workerView{"a": &a, "c": &c}, []workerView{a}, 0, 2},
		{"gone but still resolving", []workerView{a}, map[string]*workerView{"a": &a, "c": &c}, []workerView{a}, 0, 1},
		{"a role that differs", []workerView{func() workerView { x := a; r := "coder"; x.Role = &r; return x }()}, nil, []workerView{a}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := compareIndex(tt.listed, tt.lookups, tt.fresh)
			if len(d.lost) != tt.wantLost || len(d.stale) != tt.wantSt {
				t.Errorf("lost %v, stale %v; want %d lost, %d stale", d.lost, d.stale, tt.wantLost, tt.wantSt)
			}
			if d.ok() != (tt.wantLost == 0 && tt.wantSt == 0) {
				t.Errorf("ok = %v", d.ok())
			}
		})
	}
}

// TestFreshScan checks that the fresh scan reads every pod of the soak's
// store, across pages.
func TestFreshScan(t *testing.T) {
	st := newStore(t.TempDir(), 250)
	if err := st.populate(); err != nil {
		t.Fatal(err)
	}
	// One pod with broken metadata is not a worker.
	if err := os.WriteFile(filepath.Join(st.pods, "Pod.00001", "metadata.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := freshScan(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 249 {
		t.Fatalf("%d workers, want 249", len(got))
	}
	ids := make([]string, len(got))
	for i, w := range got {
		ids[i] = w.WorkerID
	}
	if !slices.IsSorted(ids) || len(slices.Compact(ids)) != 249 {
		t.Error("the scan repeats or disorders workers")
	}
}
