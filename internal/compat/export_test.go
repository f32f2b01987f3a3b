package compat

import "time"

// TestHooks stand in, for a test, for what the kernel cannot be made to do
// on demand. Nil fields change nothing.
type TestHooks struct {
	// Times rewrites the mtime and ctime (Unix nanoseconds) of every file
	// key the index sees: a constant makes a filesystem whose timestamps
	// never move.
	Times func(mtime, ctime int64) (int64, int64)
	// Now is the clock a read is timed with (for the racy-key rule).
	Now func() time.Time
	// FailRead makes the read of a pod fail as if open(2) had (EMFILE).
	FailRead func(pod string) bool
	// EventRing and EventBuffer size the event log (0: the defaults).
	EventRing, EventBuffer int
}

// NewWithHooks is New with test hooks installed.
func NewWithHooks(cfg Config, h TestHooks) *Source {
	s := New(cfg)
	th := &testHooks{now: h.Now, failRead: h.FailRead}
	if h.Times != nil {
		th.key = func(k fileKey) fileKey {
			if k != (fileKey{}) {
				k.mtime, k.ctime = h.Times(k.mtime, k.ctime)
			}
			return k
		}
	}
	s.scanCfg.hooks = th
	s.eventRing, s.eventBuffer = h.EventRing, h.EventBuffer
	return s
}
