package remote

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// List pages from memory.
//
// While the relay's upstream event stream is connected, every commit the
// Runtime makes after the stream was subscribed arrives on it as an event
// and moves the relay's position (relay.pos); so do a (re)connection, a
// disconnection, a changed instance id and this Source's own create, input
// and stop once answered. A list records the position before its request is
// sent and keeps the answer only if the position is the same, and still
// connected, when the answer has arrived: then no commit the Runtime made
// after reading the page has been delivered yet, and any later one moves
// the position and retires the page. A kept page is answered (without a
// request) while the position is unchanged and the Runtime is not failing
// fast. A commit the Runtime made before the request was sent is in the
// page, because the Runtime reads the page after that commit's event was
// published (and so after any event the relay had already delivered). A
// kept page can therefore be stale only by the relay's delivery latency:
// the time between a commit on the Runtime and its event reaching this
// backend (loopback: well under a millisecond; a slow network: its latency).

// maxListPages bounds the pages kept (all at one position).
const maxListPages = 16

type listKey struct {
	after string
	limit int
}

// listSet is an immutable set of pages read at one position.
type listSet struct {
	pos   uint64
	pages map[listKey]registry.WorkerPage
}

// listCache holds the pages of one position; reads take no lock.
type listCache struct {
	cur atomic.Pointer[listSet]
	mu  sync.Mutex // serialises puts
}

// get returns the page of k kept at pos, if any.
func (c *listCache) get(k listKey, pos uint64) (registry.WorkerPage, bool) {
	ls := c.cur.Load()
	if ls == nil || ls.pos != pos {
		return registry.WorkerPage{}, false
	}
	p, ok := ls.pages[k]
	return p, ok
}

// put keeps p at pos, replacing the pages of any other position (the
// position only moves forward, and a page of an old one is never hit).
func (c *listCache) put(k listKey, pos uint64, p registry.WorkerPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := &listSet{pos: pos, pages: map[listKey]registry.WorkerPage{}}
	if old := c.cur.Load(); old != nil && old.pos == pos {
		for ok, op := range old.pages {
			if len(next.pages) == maxListPages-1 {
				break // full: an arbitrary entry goes
			}
			next.pages[ok] = op
		}
	}
	next.pages[k] = p
	c.cur.Store(next)
}

// cacheable reports whether a position allows keeping and answering pages:
// the upstream stream is connected.
func cacheable(pos uint64) bool { return pos&1 == 1 }

// versionOf is the page Version of a position: this Source's nonce (so no
// two Sources, and no two runs, share one) and the position.
func (s *Source) versionOf(pos uint64) string {
	return s.nonce + "." + strconv.FormatUint(pos>>1, 10)
}
