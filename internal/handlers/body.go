package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/workspace-backend/runtime-registry/internal/httpvalidate"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Request bodies: read only for an operation that declares one, within a
// limit that fits its schema, checked for framing (one JSON value, UTF-8, one
// application/json Content-Type) and shape (no unknown field, bounded depth
// and size) while it is decoded, before kin-openapi builds a tree of it.

// operationBodyLimits are the body limits of the operations that take one,
// by operationId: each fits its schema with room for the JSON around it. An
// operation not named here is limited by the global cap alone.
var operationBodyLimits = map[string]int64{
	"createWorker":    16 << 10, // an intent, a profile and a name
	"sendWorkerInput": 80 << 10, // 64 KiB of content plus escaping and the envelope
	"stopWorker":      1 << 10,  // {"mode":"graceful"}
}

// Draining an oversize body: the server reads and discards up to
// maxDrainBytes of it, for at most drainTime, before it answers 413, so that a
// client that writes its whole body before reading receives the answer
// instead of a connection reset (as nginx's lingering close does).
const (
	maxDrainBytes = 8 << 20
	drainTime     = 3 * time.Second
)

// Bounds of the JSON walk: far above what any request schema needs.
const (
	maxJSONDepth  = 32
	maxJSONTokens = 4096
)

// bodyLimit is the limit of op's request body.
func (v *requestValidator) bodyLimit(op *openapi3.Operation) int64 {
	if l, ok := operationBodyLimits[op.OperationID]; ok && l < v.maxBodyBytes {
		return l
	}
	return v.maxBodyBytes
}

// readBody buffers the body of an operation that declares one and checks
// its framing and shape against schema (nil: framing only). An oversize body
// is drained (see maxDrainBytes) and answered 413 on a connection that then
// closes.
func readBody(w http.ResponseWriter, req *http.Request, limit int64, schema *openapi3.Schema) error {
	if req.ContentLength > limit {
		drainOversize(w, req, 0)
		return payloadTooLarge()
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, limit+1))
		if err != nil {
			w.Header().Set("Connection", "close")
			return registry.InvalidRequest("", "The request body could not be read.")
		}
		if int64(len(body)) > limit {
			drainOversize(w, req, int64(len(body)))
			return payloadTooLarge()
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if err := checkContentType(req); err != nil {
		return err
	}
	if len(body) == 0 {
		return nil // kin-openapi answers that the body is required
	}
	if !utf8.Valid(body) {
		return registry.InvalidRequest("", "The request body must be UTF-8.")
	}
	return checkJSON(body, schema)
}

// drainOversize reads and discards what is left of an oversize body, up to
// maxDrainBytes in all and for at most drainTime, and marks the connection to
// close after the answer. A body announced larger than maxDrainBytes, or one
// whose client waits for "100 Continue", is not read at all.
func drainOversize(w http.ResponseWriter, req *http.Request, read int64) {
	w.Header().Set("Connection", "close")
	if req.ContentLength > maxDrainBytes || req.Body == nil || req.Body == http.NoBody {
		return
	}
	if read == 0 && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		return // nothing was sent yet: net/http answers without asking for it
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(drainTime)) // unsupported in tests' recorders
	_, _ = io.CopyN(io.Discard, req.Body, maxDrainBytes-read)
	_ = rc.SetReadDeadline(time.Time{})
}

// checkContentType accepts exactly one Content-Type header line naming
// application/json, with no parameter but an optional charset=utf-8. It then
// leaves the bare media type for the contract validator.
func checkContentType(req *http.Request) error {
	vals := req.Header.Values("Content-Type")
	switch {
	case len(vals) == 0:
		return registry.InvalidRequest("", "The request body must be application/json.")
	case len(vals) > 1:
		return registry.InvalidRequest("", "The request must carry one Content-Type header, not several.")
	}
	mt, params, err := mime.ParseMediaType(vals[0])
	if err != nil || mt != "application/json" {
		return registry.InvalidRequest("", "The request body must be application/json.")
	}
	for k, p := range params {
		if k != "charset" || !strings.EqualFold(p, "utf-8") {
			return registry.InvalidRequest("", "The request body must be application/json in UTF-8: no Content-Type parameter but charset=utf-8 is accepted.")
		}
	}
	req.Header.Set("Content-Type", "application/json")
	return nil
}

// errJSONFraming marks a body that is not exactly one JSON value.
var errJSONFraming = errors.New("not one JSON value")

// checkJSON walks body token by token: it must be exactly one JSON value (no
// trailing data, no second value), no deeper than maxJSONDepth, of at most
// maxJSONTokens tokens, with no duplicate key and, where schema closes an
// object (additionalProperties: false), no key it does not declare. Nothing
// of the body is kept.
func checkJSON(body []byte, schema *openapi3.Schema) error {
	jw := &jsonWalker{dec: json.NewDecoder(bytes.NewReader(body))}
	jw.dec.UseNumber()
	err := jw.value(schema, nil, 0)
	if err == nil {
		if _, terr := jw.dec.Token(); terr != io.EOF {
			err = registry.InvalidRequest("", "The request body must hold one JSON value and nothing after it.")
		}
	}
	if errors.Is(err, errJSONFraming) {
		return registry.InvalidRequest("", "The request body is not valid JSON.")
	}
	return err
}

type jsonWalker struct {
	dec    *json.Decoder
	tokens int
}

func (jw *jsonWalker) next() (json.Token, error) {
	jw.tokens++
	if jw.tokens > maxJSONTokens {
		return nil, registry.InvalidRequest("", "The request body holds more JSON values than any request needs.")
	}
	tok, err := jw.dec.Token()
	if err != nil {
		return nil, errJSONFraming
	}
	return tok, nil
}

func (jw *jsonWalker) value(s *openapi3.Schema, path []string, depth int) error {
	tok, err := jw.next()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: the contract validator checks its type and range
	}
	if depth+1 > maxJSONDepth {
		return registry.InvalidRequest("", "The request body is nested deeper than any request needs.")
	}
	switch d {
	case '{':
		return jw.object(s, path, depth+1)
	case '[':
		var items *openapi3.Schema
		if s != nil && s.Items != nil {
			items = s.Items.Value
		}
		for jw.dec.More() {
			if err := jw.value(items, path, depth+1); err != nil {
				return err
			}
		}
		_, err := jw.next() // ']'
		return err
	}
	return errJSONFraming
}

func (jw *jsonWalker) object(s *openapi3.Schema, path []string, depth int) error {
	closed := s != nil && len(s.OneOf)+len(s.AnyOf)+len(s.AllOf) == 0 &&
		s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has
	seen := map[string]bool{}
	for jw.dec.More() {
		tok, err := jw.next()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errJSONFraming
		}
		field := strings.Join(append(path[:len(path):len(path)], key), ".")
		if seen[key] {
			return registry.InvalidRequest(httpvalidate.BoundedText(field, 64), fmt.Sprintf("The request body field %q appears twice.", httpvalidate.BoundedText(field, 64)))
		}
		seen[key] = true
		var child *openapi3.Schema
		if s != nil {
			if ref := s.Properties[key]; ref != nil {
				child = ref.Value
			} else if closed {
				return registry.InvalidRequest(httpvalidate.BoundedText(field, 64), fmt.Sprintf("The request body field %q is not allowed.", httpvalidate.BoundedText(field, 64)))
			}
		}
		if err := jw.value(child, append(path[:len(path):len(path)], key), depth); err != nil {
			return err
		}
	}
	_, err := jw.next() // '}'
	return err
}
