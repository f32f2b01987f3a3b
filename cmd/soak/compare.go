package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// workerView is the part of a WorkerSummary the final comparison checks:
// everything the local source projects from the store.
type workerView struct {
	WorkerID       string  `json:"worker_id"`
	HostID         string  `json:"host_id"`
	Label          string  `json:"label"`
	Role           *string `json:"role"`
	Profile        *string `json:"profile"`
	State          string  `json:"state"`
	Status         string  `json:"status"`
	Implementation struct {
		DisplayHint string `json:"display_hint"`
	} `json:"implementation"`
}

func viewOf(w registry.Worker) workerView {
	v := workerView{WorkerID: string(w.ID), HostID: string(w.HostID), Label: w.Label, Role: w.Role, Profile: w.Profile,
		State: string(w.State), Status: w.Status}
	v.Implementation.DisplayHint = w.Implementation.DisplayHint
	return v
}

// indexDiff is how the server's answers differ from a fresh scan of the
// store: lost are workers of the store the server does not answer (or
// answers differently by lookup), stale are workers the server answers
// that the store no longer has, or has otherwise.
type indexDiff struct {
	workers     int
	lost, stale []string
}

func (d indexDiff) ok() bool { return len(d.lost) == 0 && len(d.stale) == 0 }

// compareIndex compares the server's list (and its lookups, by id; nil when
// not asked) with a fresh scan.
func compareIndex(listed []workerView, lookups map[string]*workerView, fresh []workerView) indexDiff {
	d := indexDiff{workers: len(fresh)}
	want := make(map[string]workerView, len(fresh))
	for _, w := range fresh {
		want[w.WorkerID] = w
	}
	got := make(map[string]workerView, len(listed))
	for _, w := range listed {
		got[w.WorkerID] = w
	}
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			d.lost = append(d.lost, id+" (not listed)")
		case !reflect.DeepEqual(g, w):
			d.stale = append(d.stale, id+" (listed as an older projection)")
		}
		if lookups == nil {
			continue
		}
		switch l, ok := lookups[id]; {
		case !ok:
		case l == nil:
			d.lost = append(d.lost, id+" (lookup fails)")
		case !reflect.DeepEqual(*l, w):
			d.stale = append(d.stale, id+" (lookup answers an older projection)")
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			d.stale = append(d.stale, id+" (listed, gone from the store)")
		}
	}
	for id, l := range lookups {
		if _, ok := want[id]; !ok && l != nil {
			d.stale = append(d.stale, id+" (resolves, gone from the store)")
		}
	}
	slices.Sort(d.lost)
	slices.Sort(d.stale)
	d.lost, d.stale = slices.Compact(d.lost), slices.Compact(d.stale)
	return d
}

// freshScan lists the store as an unindexed local source does: read afresh.
func freshScan(ctx context.Context, st *store) ([]workerView, error) {
	src := compat.New(compat.Config{WorkspaceID: workspaceID, WorkspaceRoot: st.root, DataDir: st.dataDir})
	var out []workerView
	var after registry.WorkerID
	for {
		page, err := src.Workers(ctx, registry.WorkerQuery{Limit: registry.DefaultMaxRecords, After: after})
		if err != nil {
			return nil, err
		}
		for _, w := range page.Workers {
			out = append(out, viewOf(w))
		}
		if !page.More || len(page.Workers) == 0 {
			return out, nil
		}
		after = page.Workers[len(page.Workers)-1].ID
	}
}

// serverList reads every page of the local runtime's worker list.
func (l *load) serverList(ctx context.Context) ([]workerView, error) {
	var out []workerView
	path := "/api/runtimes/" + runtimeID + "/workers?limit=200"
	for range 10_000 {
		status, body := l.do(ctx, "GET", path, "")
		if status != http.StatusOK {
			return nil, fmt.Errorf("list answered %d", status)
		}
		var page struct {
			Items      []workerView `json:"items"`
			NextCursor *string      `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.NextCursor == nil {
			return out, nil
		}
		path = "/api/runtimes/" + runtimeID + "/workers?limit=200&cursor=" + url.QueryEscape(*page.NextCursor)
	}
	return nil, fmt.Errorf("the list does not end")
}

// serverLookups looks every id up; a nil view is an id that did not resolve.
func (l *load) serverLookups(ctx context.Context, ids []string) map[string]*workerView {
	out := make(map[string]*workerView, len(ids))
	for _, id := range ids {
		status, body := l.do(ctx, "GET", "/api/runtimes/"+runtimeID+"/workers/"+url.PathEscape(id), "")
		var v workerView
		if status != http.StatusOK || json.Unmarshal(body, &v) != nil {
			out[id] = nil
			continue
		}
		out[id] = &v
	}
	return out
}

// finalCompare compares what the server answers with a fresh scan of the
// store once the writers stopped, until they agree or within settle: the
// index promises a change within about 1 s (a torn write is held 500 ms).
// It returns the last difference and how long agreement took.
func (l *load) finalCompare(ctx context.Context, st *store, settle time.Duration) (indexDiff, time.Duration, error) {
	start := time.Now()
	for {
		fresh, err := freshScan(ctx, st)
		if err != nil {
			return indexDiff{}, 0, err
		}
		listed, err := l.serverList(ctx)
		if err != nil {
			return indexDiff{}, 0, err
		}
		ids := make([]string, 0, len(fresh)+len(listed))
		for _, w := range fresh {
			ids = append(ids, w.WorkerID)
		}
		for _, w := range listed {
			ids = append(ids, w.WorkerID)
		}
		slices.Sort(ids)
		d := compareIndex(listed, l.serverLookups(ctx, slices.Compact(ids)), fresh)
		if d.ok() || time.Since(start) > settle {
			return d, time.Since(start), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}
