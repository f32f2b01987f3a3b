// Package api holds the contract, openapi.yaml, embedded exactly as written,
// so that the server validates requests against, and serves at
// /api/openapi.json, the very file front-end engineers read and generate
// their clients from. (The spec oapi-codegen embeds in internal/gen has its
// operationIds capitalised.)
package api

import (
	_ "embed"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
)

// OpenAPIYAML is api/openapi.yaml as committed.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// Load parses the embedded contract. It fails only if the file does not parse,
// which the contract checks rule out before a build ships.
func Load() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("api: loading the embedded contract: %w", err)
	}
	return doc, nil
}

// WorkerRuntimeYAML is api/worker-runtime.yaml as committed: the contract of
// the worker-runtime process.
//
//go:embed worker-runtime.yaml
var WorkerRuntimeYAML []byte

// LoadWorkerRuntime parses the embedded worker-runtime contract. It fails
// only if the file does not parse, which the contract checks rule out.
func LoadWorkerRuntime() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(WorkerRuntimeYAML)
	if err != nil {
		return nil, fmt.Errorf("api: loading the embedded worker-runtime contract: %w", err)
	}
	return doc, nil
}
