package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// Conditional GET and the encoded-body cache.
//
// Every GET that returns registry data answers with a strong ETag, a hash of
// the exact body, and Cache-Control: no-cache. A request whose If-None-Match
// holds that tag gets 304 without a body. When the registry reports a content
// Version for a list (registry.List.Version), the encoded body and its tag are
// kept in a small cache keyed by the operation, its parameters and that
// version, so an unchanged page is neither encoded nor hashed again. The
// cache holds bytes only: every request still goes through the registry (for
// routing, visibility and audit), which is what tells whether the version is
// still current.

// DefaultBodyCacheBytes bounds the bytes of encoded bodies kept: about a
// hundred 200-worker pages.
const DefaultBodyCacheBytes = 8 << 20

// encoded is one encoded body with its entity tag.
type encoded struct {
	body []byte
	etag string
	// etagValue is etag as a header value, made once with the body.
	etagValue []string
}

// encode marshals v as the generated strict handlers do (json.Encoder adds a
// newline) and tags it.
func encode(v any) (encoded, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return encoded{}, err
	}
	body = append(body, '\n')
	etag := etagOf(body)
	return encoded{body: body, etag: etag, etagValue: []string{etag}}, nil
}

// etagOf is the strong entity tag of body: the first 128 bits of its SHA-256,
// in hex, quoted.
func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// bodyCache keeps encoded bodies by key, within a byte budget. When it is
// full an arbitrary entry goes: keys carry the content version, so stale
// entries are never hit again and any eviction order is correct.
type bodyCache struct {
	mu      sync.RWMutex
	budget  int
	size    int
	entries map[string]encoded
}

func newBodyCache(budget int) *bodyCache {
	return &bodyCache{budget: budget, entries: map[string]encoded{}}
}

func (c *bodyCache) get(key string) (encoded, bool) {
	if c == nil || key == "" {
		return encoded{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[key]
	return e, ok
}

func (c *bodyCache) put(key string, e encoded) {
	size := entrySize(key, e)
	if c == nil || key == "" || size > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok {
		c.size -= entrySize(key, old)
		delete(c.entries, key)
	}
	for k, v := range c.entries {
		if c.size+size <= c.budget {
			break
		}
		delete(c.entries, k)
		c.size -= entrySize(k, v)
	}
	c.entries[key] = e
	c.size += size
}

// entrySize is what one entry counts against the budget: its bytes, key and
// tag (for a small Worker the key and tag are a fifth of it).
func entrySize(key string, e encoded) int { return len(key) + len(e.body) + len(e.etag) }

// cacheKey joins an operation name, its parameters and the content version;
// "" (no caching) when the version is unknown.
func cacheKey(version string, parts ...string) string {
	if version == "" {
		return ""
	}
	n := len(version)
	for _, p := range parts {
		n += len(p) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.WriteString(p)
		b.WriteByte(0)
	}
	b.WriteString(version)
	return b.String()
}

// respond answers one cacheable GET: from the cache when key is known,
// otherwise by encoding build(). ifNoneMatch is the request's If-None-Match.
func (h *Handlers) respond(key string, ifNoneMatch *string, build func() any) (cachedResponse, error) {
	return respondFrom(h.cache, key, ifNoneMatch, build)
}

// respondFrom is respond with the cache c.
func respondFrom(c *bodyCache, key string, ifNoneMatch *string, build func() any) (cachedResponse, error) {
	e, ok := c.get(key)
	if !ok {
		var err error
		if e, err = encode(build()); err != nil {
			return cachedResponse{}, err
		}
		c.put(key, e)
	}
	return cachedResponse{encoded: e, notModified: ifNoneMatch != nil && etagMatches(*ifNoneMatch, e.etag)}, nil
}

// etagMatches reports whether the If-None-Match value header lists etag or
// is "*". If-None-Match compares weakly (RFC 9110 section 13.1.2), so a W/
// prefix is ignored.
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

// cachedResponse is the answer of every cacheable GET: 200 with the body, or
// 304 without one. Both carry the tag and Cache-Control: no-cache.
type cachedResponse struct {
	encoded
	notModified bool
}

func (r cachedResponse) write(w http.ResponseWriter) error {
	hdr := w.Header()
	hdr["Etag"] = r.etagValue // the canonical form of "ETag"
	hdr["Cache-Control"] = noCacheValue
	if r.notModified {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hdr[echo.HeaderContentType] = jsonValue
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(r.body)
	return err
}

// The Visit methods make cachedResponse an answer of every cacheable GET.

func (r cachedResponse) VisitListRuntimesResponse(w http.ResponseWriter) error { return r.write(w) }
func (r cachedResponse) VisitListHostsResponse(w http.ResponseWriter) error    { return r.write(w) }
func (r cachedResponse) VisitListWorkersResponse(w http.ResponseWriter) error  { return r.write(w) }
func (r cachedResponse) VisitListHostWorkersResponse(w http.ResponseWriter) error {
	return r.write(w)
}
func (r cachedResponse) VisitGetRuntimeResponse(w http.ResponseWriter) error { return r.write(w) }
func (r cachedResponse) VisitListRuntimeHostsResponse(w http.ResponseWriter) error {
	return r.write(w)
}
func (r cachedResponse) VisitListRuntimeWorkersResponse(w http.ResponseWriter) error {
	return r.write(w)
}
func (r cachedResponse) VisitGetWorkerResponse(w http.ResponseWriter) error { return r.write(w) }
func (r cachedResponse) VisitListRuntimeProfilesResponse(w http.ResponseWriter) error {
	return r.write(w)
}
func (r cachedResponse) VisitGetWorkerTranscriptResponse(w http.ResponseWriter) error {
	return r.write(w)
}
