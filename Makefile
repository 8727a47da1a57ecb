# cuemta — build, test and benchmark.
GO        ?= go
BIN       ?= bin/cuemta
PKGS      := ./...
# The race detector slows CUE evaluation a lot on 2 cores; the packages
# with concurrency of their own run under it, and the end-to-end tests run
# again against a binary built with -race (CUEMTA_E2E_RACE).
RACE_PKGS := ./queue/... ./reception/... ./rules/... ./delivery/... ./engine/... ./admin/... ./deliverylog/... ./sim/... ./tests/e2e/...

.PHONY: all build test test-short lint fmt-check vet bench bench-inject bench-relay clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cuemta

# The whole suite: formatting, vet, unit, golden and end-to-end tests.
test: fmt-check vet
	$(GO) test -count=1 -timeout 8m $(PKGS)
	CUEMTA_E2E_RACE=1 $(GO) test -count=1 -race -timeout 8m $(RACE_PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint: fmt-check vet
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); else echo "staticcheck not installed; skipped"; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Load benchmarks over loopback (bench/README.md): each builds cuemta and the
# tools, runs for under 2 minutes and prints a summary. Knobs go in the
# environment or on the command line, e.g. `make bench-inject DURATION=3`.
.PHONY: bench-dkim bench-reload
bench-inject:
	GO=$(GO) bash bench/run-inject.sh

bench-relay:
	GO=$(GO) bash bench/run-relay.sh

bench-reload:
	GO=$(GO) bash bench/run-reload.sh

bench-dkim:
	GO=$(GO) bash bench/run-dkim.sh

clean:
	rm -rf bin
