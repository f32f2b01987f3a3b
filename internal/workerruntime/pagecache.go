package workerruntime

import (
	"sync"
	"sync/atomic"
)

// List pages from memory.
//
// Every write the store commits that changes a worker row also appends an
// event in the same transaction (create, state change, transcript append,
// crash recovery: see the Store interface), and a list page is read
// together with the newest event seq in one read transaction. So a page is
// a function of the seq it was read at: two reads of the same query at the
// same seq are identical.
//
// The Runtime keeps the newest seq whose commit hook has run (committed):
// the hook runs after the commit and before the write returns to its
// caller, so anyone who has seen a write acknowledged also sees committed
// at or past that write's seq. A List whose current committed equals the
// seq a cached page was read at answers that page without the store. A page
// read before a later commit carries its own (older) seq and is never served
// once committed moves past it; a page read after a commit whose hook has
// not yet run carries the newer seq and is served only once committed
// reaches it. Either way a List never answers a page older than a write its
// caller has seen acknowledged.

// maxCachedPages bounds the pages kept (all at one seq).
const maxCachedPages = 64

type pageKey struct {
	after string
	limit int
}

// pageSet is an immutable set of pages read at one seq.
type pageSet struct {
	seq   int64
	pages map[pageKey]WorkerPage
}

// pageCache holds the pages of the newest seq seen. Reads are one atomic
// load and a map lookup; a put copies the (small) map.
type pageCache struct {
	cur atomic.Pointer[pageSet]
	mu  sync.Mutex // serialises puts
}

// get returns the page of k read at seq, if kept.
func (c *pageCache) get(k pageKey, seq int64) (WorkerPage, bool) {
	ps := c.cur.Load()
	if ps == nil || ps.seq != seq {
		return WorkerPage{}, false
	}
	p, ok := ps.pages[k]
	return p, ok
}

// put keeps p, read at seq, unless pages of a newer seq are kept already.
func (c *pageCache) put(k pageKey, seq int64, p WorkerPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	next := &pageSet{seq: seq}
	switch {
	case old != nil && seq < old.seq:
		return // read before a newer commit: it can never be served
	case old != nil && seq == old.seq:
		next.pages = make(map[pageKey]WorkerPage, min(len(old.pages)+1, maxCachedPages))
		for ok, op := range old.pages {
			if len(next.pages) == maxCachedPages-1 {
				break // full: an arbitrary entry goes
			}
			next.pages[ok] = op
		}
	default:
		next.pages = make(map[pageKey]WorkerPage, 1)
	}
	next.pages[k] = p
	c.cur.Store(next)
}

// clear drops every page (the store is closed).
func (c *pageCache) clear() {
	c.mu.Lock()
	c.cur.Store(nil)
	c.mu.Unlock()
}

// advanceCommitted raises the committed seq to seq (never lowers it).
func advanceCommitted(a *atomic.Int64, seq int64) {
	for {
		cur := a.Load()
		if seq <= cur || a.CompareAndSwap(cur, seq) {
			return
		}
	}
}
