package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// limitListener accepts at most n connections open at once: Accept waits
// for one to close. (golang.org/x/net/netutil.LimitListener does the same;
// this one avoids the dependency and unblocks Accept on Close.)
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, when it is closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// connKey is the context key of a request's connection.
type connKey struct{}

// withConn is the http.Server's ConnContext: it records the connection so
// that a request body can be cut at shutdown.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// errShuttingDown ends a request body that was still arriving at shutdown.
var errShuttingDown = errors.New("server shutting down")

// bodyCutter ends request bodies still arriving when shutdown begins: a
// client trickling its body must not hold the shutdown for its whole
// timeout. Requests that have their body go on to finish.
type bodyCutter struct {
	mu      sync.Mutex
	cutting bool
	reading map[*cutBody]struct{}
}

func newBodyCutter() *bodyCutter { return &bodyCutter{reading: map[*cutBody]struct{}{}} }

// wrap gives every request with a body a body that cut can end.
func (bc *bodyCutter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _ := r.Context().Value(connKey{}).(net.Conn)
		if r.Body == nil || r.Body == http.NoBody || conn == nil {
			h.ServeHTTP(w, r)
			return
		}
		b := &cutBody{ReadCloser: r.Body, bc: bc, conn: conn}
		// A copy: net/http must still see its own body type on its request
		// to decide what to do with a body left unread.
		r = r.WithContext(r.Context())
		r.Body = b
		defer b.done()
		h.ServeHTTP(w, r)
	})
}

// cut is called once shutdown begins: every body being read now fails at
// once (its connection's read deadline is now), and every later read too.
func (bc *bodyCutter) cut() {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	bc.cutting = true
	for b := range bc.reading {
		_ = b.conn.SetReadDeadline(time.Now())
	}
}

// cutBody is a request body that bodyCutter can end.
type cutBody struct {
	io.ReadCloser
	bc   *bodyCutter
	conn net.Conn
}

func (b *cutBody) Read(p []byte) (int, error) {
	b.bc.mu.Lock()
	if b.bc.cutting {
		b.bc.mu.Unlock()
		// The connection's deadline too: net/http reads what is left of a
		// small body after the handler, and a body first read after the
		// cut was never in the reading set that cut() ended.
		_ = b.conn.SetReadDeadline(time.Now())
		return 0, errShuttingDown
	}
	b.bc.reading[b] = struct{}{}
	b.bc.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done()
	}
	return n, err
}

// done takes the body off the list: its connection's deadline is never
// touched again (the connection may serve a next request).
func (b *cutBody) done() {
	b.bc.mu.Lock()
	defer b.bc.mu.Unlock()
	delete(b.bc.reading, b)
}
