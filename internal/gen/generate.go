// Package gen holds the Go server interface, models and embedded spec generated
// from api/openapi.yaml by oapi-codegen. Everything except this file is
// generated: change the contract and regenerate, never edit api.gen.go by hand.
package gen

// Runs from the repository root (go -C), exactly like `make generate`, so the
// output path in oapi-codegen.yaml resolves the same way.
//go:generate go -C ../.. tool oapi-codegen -config oapi-codegen.yaml api/openapi.yaml

// The worker-runtime contract's server, client and models are generated into
// the sub-package workerruntimeapi (its own generate.go).
