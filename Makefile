# Workspace Backend runtime registry. `make run` serves the shipped sample
# workspace; `make test` is what CI runs.

GO            ?= go
LISTEN        ?= 127.0.0.1:8080
SAMPLE_DATA   := examples/sample-workspace/data
SAMPLE_ROOT   := /srv/workspaces/sample-app
BIN           := bin/runtime-registry

.PHONY: all generate build run test test-go lint vet fmt-check bench bench-go

all: build

## generate: regenerate internal/gen from api/openapi.yaml (never edit internal/gen by hand)
generate:
	$(GO) tool oapi-codegen -config oapi-codegen.yaml api/openapi.yaml

## build: compile the server into bin/
build:
	$(GO) build -o $(BIN) ./cmd/server

## run: serve the API on the shipped sample workspace
run: build
	./$(BIN) --listen $(LISTEN) --workspace-id local:sample --workspace-root $(SAMPLE_ROOT) --data-dir $(SAMPLE_DATA)

## test: everything CI checks
test: vet fmt-check test-go

test-go:
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^internal/gen/')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## lint: golangci-lint (installed on demand at a pinned version)
lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

## bench: load run against the real server over a generated 10,000-pod store,
## beside a static baseline, plus cold start and peak RSS at 100,000 pods
## (about 3 minutes; stores are generated once under $$TMPDIR). See BENCHMARKS.md.
bench: build
	$(GO) run ./cmd/loadbench -server $(BIN)

## bench-go: Go benchmarks of the index (1,000 / 10,000 / 100,000 pods) and of whole requests
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/compat/ ./internal/handlers/
