package httpvalidate_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/internal/httpvalidate"
)

const spec = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string, pattern: '^[A-Za-z0-9_:-]{1,120}$'}}
    post:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 5}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [name]
              properties:
                name: {type: string, maxLength: 3}
      responses:
        '200': {description: ok}
`

func server(t *testing.T) *echo.Echo {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	v, err := httpvalidate.New(doc, 64)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.Use(v.Middleware)
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		var ve *httpvalidate.Error
		if errors.As(err, &ve) {
			_ = c.String(http.StatusBadRequest, string(ve.Code)+"|"+ve.Field)
			return
		}
		_ = c.String(http.StatusTeapot, "other")
	}
	e.POST("/things/:id", func(c echo.Context) error { return c.String(200, "ok") })
	return e
}

func TestValidator(t *testing.T) {
	e := server(t)
	tests := []struct {
		name, path, body, want string
	}{
		{"valid", "/things/a1?limit=2", `{"name":"ab"}`, "ok"},
		{"bad id", "/things/a%20b", `{"name":"ab"}`, "invalid_identifier|id"},
		{"unknown query", "/things/a?x=1", `{"name":"ab"}`, "invalid_request|x"},
		{"query out of range", "/things/a?limit=9", `{"name":"ab"}`, "invalid_request|limit"},
		{"unknown field", "/things/a", `{"name":"ab","cmd":"x"}`, "invalid_request|"},
		{"too long", "/things/a", `{"name":"abcd"}`, "invalid_request|name"},
		{"not json", "/things/a", `{`, "invalid_request|"},
		{"too large", "/things/a", `{"name":"` + strings.Repeat("a", 100) + `"}`, "payload_too_large|"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if got := rec.Body.String(); got != tc.want {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestEchoPath(t *testing.T) {
	if got := httpvalidate.EchoPath("/v1/workers/{worker_id}/input"); got != "/v1/workers/:worker_id/input" {
		t.Fatal(got)
	}
}
