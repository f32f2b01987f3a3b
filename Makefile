# Workspace Backend runtime registry. `make run` serves the shipped sample
# workspace; `make test` is what CI runs.

GO            ?= go
LISTEN        ?= 127.0.0.1:8080
SAMPLE        := examples/sample-workspace
# The sample workspace's root: a real directory, where embedded workers start.
SAMPLE_ROOT   := $(CURDIR)/$(SAMPLE)/app
# The committed pod metadata names this root; `make sample-data` writes a copy
# under .state/ that names SAMPLE_ROOT instead (the local source compares the
# two lexically), so both runtimes agree on a fresh clone.
TEMPLATE_ROOT := /srv/workspaces/sample-app
STATE         := .state
SAMPLE_DATA   := $(STATE)/sample-data
RUN_STATE     := $(STATE)/embedded-runtime
BIN           := bin/runtime-registry
TS_CLIENT     := clients/typescript
# npm ci writes this file last: it stamps an installed clients/typescript/node_modules.
NODE_DEPS     := $(TS_CLIENT)/node_modules/.package-lock.json
CONSOLE       := web/console
CONSOLE_DEPS  := $(CONSOLE)/node_modules/.package-lock.json

.PHONY: all generate build build-worker-runtime run run-cluster sample-data test test-go test-big lint tidy-check binaries-check vet fmt-check contract contract-fuzz node-deps console console-test fuzz fuzz-brief fuzz-run soak bench bench-profile bench-go bench-embedded bench-remote

all: build

## generate: regenerate internal/gen (both contracts) and the TypeScript schema from api/*.yaml (never edit them by hand)
generate: $(NODE_DEPS)
	$(GO) tool oapi-codegen -config oapi-codegen.yaml api/openapi.yaml
	$(GO) tool oapi-codegen -config oapi-codegen-worker-runtime.yaml api/worker-runtime.yaml
	cd $(TS_CLIENT) && npm run --silent generate

## build: compile the server into bin/
build:
	$(GO) build -o $(BIN) ./cmd/server

## build-worker-runtime: compile the Worker Runtime process into bin/
build-worker-runtime:
	$(GO) build -o bin/worker-runtime ./cmd/worker-runtime

## run-cluster: the backend plus two worker-runtime processes on loopback, each
## with its own state dir and token under .state/cluster/ (git-ignored), so
## /api/runtimes lists the local, the embedded and two remote runtimes (README "Runtimes on other machines")
run-cluster: build build-worker-runtime sample-data
	LISTEN=$(LISTEN) ./scripts/run-cluster.sh --workspace-id local:sample --workspace-root $(SAMPLE_ROOT) \
		--data-dir $(SAMPLE_DATA) --state-dir $(STATE)/cluster/embedded --profiles $(SAMPLE)/profiles.yaml

## run: serve the API on the shipped sample workspace: the local pods of
## $(SAMPLE)/data and an embedded Worker Runtime with $(SAMPLE)/profiles.yaml
## (its database under the git-ignored $(STATE)/)
run: build sample-data
	./$(BIN) --listen $(LISTEN) --workspace-id local:sample --workspace-root $(SAMPLE_ROOT) --data-dir $(SAMPLE_DATA) \
		--state-dir $(RUN_STATE) --profiles $(SAMPLE)/profiles.yaml

## sample-data: write the sample pods under $(STATE)/ with their workspace_root set to SAMPLE_ROOT
sample-data:
	@rm -rf $(SAMPLE_DATA)
	@for d in $(SAMPLE)/data/pods/*/; do \
		n=$$(basename "$$d"); mkdir -p "$(SAMPLE_DATA)/pods/$$n"; \
		sed 's|$(TEMPLATE_ROOT)|$(SAMPLE_ROOT)|' "$$d/metadata.json" > "$(SAMPLE_DATA)/pods/$$n/metadata.json"; \
	done

## test: everything CI checks (fuzzing briefly)
test: vet fmt-check test-go console-test contract fuzz-brief

# internal/contract runs in `make contract` (once, with its tools): test-go
# leaves it out so that its property tests do not run twice.
test-go:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/internal/contract$$')

## test-big: the tests too big for every make test (a pods/ of 100,000 directories)
test-big:
	COMPAT_BIG=1 $(GO) test -race -count=1 -run 'TestManyPodDirectories' ./internal/compat/

## contract: the contract checks (see internal/contract): kin-openapi + Redocly lint,
## generation drift, oasdiff against api/released, forbidden names, tsc, the
## TypeScript smoke walk against the real server, property-based response checks
contract: $(NODE_DEPS) $(CONSOLE_DEPS)
	CONTRACT_TOOLS=1 $(GO) test -count=1 ./internal/contract/

## contract-fuzz: the property-based contract tests with many more cases (about a minute)
contract-fuzz:
	$(GO) test -count=1 -run Property ./internal/contract/ -rapid.checks=20000

## node-deps: install the pinned Node packages of the TypeScript client and the console (npm ci)
node-deps: $(NODE_DEPS) $(CONSOLE_DEPS)

$(NODE_DEPS): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund

$(CONSOLE_DEPS): $(CONSOLE)/package.json $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund

## console: rebuild the browser console into web/console/dist (commit the result;
## `make contract` fails when dist/ is not what the sources build to)
console: $(NODE_DEPS) $(CONSOLE_DEPS)
	cd $(CONSOLE) && node build.mjs dist

## console-test: type-check the console and run its unit tests (node --test)
console-test: $(NODE_DEPS) $(CONSOLE_DEPS)
	cd $(CONSOLE) && rm -rf build-test && ./node_modules/.bin/tsc --noEmit -p tsconfig.json \
		&& ./node_modules/.bin/tsc -p tsconfig.test.json && node --test build-test/

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^internal/gen/')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## lint: golangci-lint (installed on demand at a pinned version), go.mod tidiness, no built binaries tracked
lint: tidy-check binaries-check
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

tidy-check:
	$(GO) mod tidy -diff

# A tracked file over 1 MiB that is not text is a build output committed by
# mistake (a 13 MB binary once was): fail, naming it.
binaries-check:
	@bad=$$(git ls-files -z | xargs -0 -r sh -c 'for f; do [ -f "$$f" ] && [ $$(stat -c %s "$$f") -gt 1048576 ] && ! grep -Iq . "$$f" && echo "$$f"; done' sh); \
	if [ -n "$$bad" ]; then echo "built binaries are tracked (add them to .gitignore):"; echo "$$bad"; exit 1; fi

# Fuzz targets as package:FuzzName; go test runs one -fuzz target at a time.
FUZZ_TARGETS := ./internal/registry:FuzzValidID ./internal/registry:FuzzRuntimeWorkersCursor \
	./internal/compat:FuzzBounded ./internal/compat:FuzzMetadataProjection ./internal/compat:FuzzCacheDecode \
	./internal/handlers:FuzzHandler
# Both limits are counts of executions, not durations: Go 1.26's fuzz
# coordinator can fail a run whose -fuzztime is a duration with a bare
# "context deadline exceeded" and no crasher when the deadline races a
# worker (golang/go#75804, fixed in Go 1.27); a count never arms that deadline.
# Brief: about 1 s for the fast targets, 10–20 s for the HTTP handler and the
# file-writing metadata target; long: a few minutes each.
FUZZTIME       ?= 200000x
FUZZTIME_BRIEF ?= 20000x

## fuzz: run every fuzz target for FUZZTIME executions each (seed corpora: testdata/fuzz/)
fuzz:
	@$(MAKE) --no-print-directory fuzz-run FUZZ_FOR=$(FUZZTIME)

## fuzz-brief: every fuzz target for FUZZTIME_BRIEF executions each (part of make test)
fuzz-brief:
	@$(MAKE) --no-print-directory fuzz-run FUZZ_FOR=$(FUZZTIME_BRIEF)

fuzz-run:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== fuzz $$name for $(FUZZ_FOR)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZ_FOR) $$pkg || exit 1; \
	done

SOAK_DURATION ?= 60s
SOAK_RATE     ?= 200
SOAK_FLAGS    ?=

## soak: bounded load with store faults against the real server on 127.0.0.1 (RELIABILITY.md)
soak:
	$(GO) build -tags soakhooks -o bin/runtime-registry-soak ./cmd/server
	$(GO) run ./cmd/soak --server bin/runtime-registry-soak --duration $(SOAK_DURATION) --rate $(SOAK_RATE) $(SOAK_FLAGS)

## bench: load run against the real server over a generated 10,000-pod store,
## beside a static baseline, plus cold start and peak RSS at 100,000 pods
## (about 5 minutes; stores are generated once under $$TMPDIR). The first start
## of each store reads a cold page cache: run as root, it drops the kernel's page
## cache first (skipped with a note otherwise). See BENCHMARKS.md.
bench: build build-worker-runtime
	$(GO) run ./cmd/loadbench -server $(BIN) -worker-runtime bin/worker-runtime -drop-caches

## bench-profile: the load run of the 10,000-pod store only, against a server built with -tags pprof,
## writing CPU profiles of the server during the page of 200, the merged list and the worker by id to bench-profiles/
bench-profile: build-worker-runtime
	$(GO) build -tags pprof -o bin/runtime-registry-pprof ./cmd/server
	$(GO) run ./cmd/loadbench -server bin/runtime-registry-pprof -worker-runtime bin/worker-runtime -big-pods 0 -cpuprofile bench-profiles
	$(GO) tool pprof -top -nodecount 25 bin/runtime-registry-pprof bench-profiles/page200.pprof

## bench-remote: backend vs direct calls to worker-runtime processes on loopback (BENCHMARKS.md)
bench-remote:
	$(GO) test -run '^$$' -bench 'Lookup|InputRoundTrip' -benchtime 2000x ./internal/remote/
	$(GO) test -run '^$$' -bench 'ConcurrentCreates' -benchtime 5x ./internal/remote/
	$(GO) test -run '^$$' -bench 'MergedListOneHung' -benchtime 20x ./internal/remote/

## bench-embedded: the embedded Worker Runtime through the real server binary (create to
## active, input to echo on an open stream, 1,000 streams on one worker) and the page
## benchmarks over 10 and 10,000 stopped workers (stores generated once under $$TMPDIR)
bench-embedded: build
	$(GO) run ./cmd/loadbench -embedded -server $(BIN)
	$(GO) test -run '^$$' -bench BenchmarkEmbeddedPages -benchmem ./internal/handlers/

## bench-go: Go benchmarks of the index (1,000 / 10,000 / 100,000 pods) and of whole requests
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/compat/ ./internal/handlers/
