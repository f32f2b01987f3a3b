// Package workerruntimeapi holds the Go server interface, client and models
// generated from api/worker-runtime.yaml by oapi-codegen. Everything except
// this file is generated: change the contract and regenerate, never edit
// api.gen.go by hand.
package workerruntimeapi

// Runs from the repository root (go -C), exactly like `make generate`.
//go:generate go -C ../../.. tool oapi-codegen -config oapi-codegen-worker-runtime.yaml api/worker-runtime.yaml
