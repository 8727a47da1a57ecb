# cuemta — build, test and benchmark.
GO        ?= go
BIN       ?= bin/cuemta
PKGS      := ./...
# The race detector slows CUE evaluation a lot on 2 cores; the packages
# with concurrency of their own run under it, and the end-to-end tests run
# again against a binary built with -race (CUEMTA_E2E_RACE).
RACE_PKGS := ./config/... ./dkim/... ./queue/... ./reception/... ./milter/... ./rules/... ./delivery/... ./cluster/... ./server/... ./intake/... ./admin/... ./deliverylog/... ./hooks/... ./suppress/... ./feedback/... ./tlsrpt/... ./dmarcreport/... ./internal/reportbook/... ./dnsbl/... ./greylist/... ./sim/... ./tests/e2e/...

.PHONY: all build deps bench-deps test test-short lint fmt-check vet bench bench-inject bench-relay fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cuemta

# Debian packages the suite uses: systemd (systemd-analyze verifies the
# unit in packaging/), python3-dkim and python3-nacl (an independent DKIM
# verifier, RSA and Ed25519) with python3-authres (dkimpy's ARC signer and
# verifier need it), postfix (smtp-source and smtp-sink;
# preseeded "No configuration", so no mail system is set up), chromium
# (the console page's browser test), spamass-milter, spamassassin and
# spamd (a real milter in front of spamd for the content-filter tests;
# spamd is its own package and only recommended, so named) and
# redis-server (the cluster tests start their own on a loopback port,
# without persistence). apt runs only when one of them is missing;
# without apt-get the tests that need them say so and skip.
DEB_PKGS := systemd python3-dkim python3-nacl python3-authres postfix chromium spamass-milter spamassassin spamd redis-server
# What the benchmarks add (`make bench-deps`): opendkim and opendkim-tools,
# the signing milter bench/run-dkim.sh compares with (no daemon is set up).
BENCH_DEB_PKGS := postfix opendkim opendkim-tools

# install-missing PKGS: apt-get install those of PKGS not installed.
define install-missing
	@missing=; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	if ! command -v apt-get >/dev/null; then echo "deps: missing$$missing and no apt-get; what needs them skips"; exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "deps: installing$$missing"; \
	echo "postfix postfix/main_mailer_type select No configuration" | $$sudo debconf-set-selections && \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing
endef

deps:
	$(call install-missing,$(DEB_PKGS))

bench-deps:
	$(call install-missing,$(BENCH_DEB_PKGS))

# The whole suite: formatting, vet, unit, golden, packaging and end-to-end
# tests (after deps).
test: deps fmt-check vet
	$(GO) test -count=1 -timeout 12m $(PKGS)
	CUEMTA_E2E_RACE=1 $(GO) test -count=1 -race -timeout 12m $(RACE_PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint: fmt-check vet
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); else echo "staticcheck not installed; skipped"; fi

# Native Go fuzzing, one target after the other (go test takes one -fuzz
# target per package run). `make test` already runs each target's seed
# corpus (f.Add seeds and testdata/fuzz/) as a plain test; this explores
# further, FUZZTIME per target, e.g. `make fuzz FUZZTIME=2m`. A failing
# input is saved under the package's testdata/fuzz/FuzzX/; the other
# targets still run, and the target fails at the end.
FUZZTIME ?= 20s
FUZZ_TARGETS := \
	reception:FuzzSession reception:FuzzCheckMailbox reception:FuzzBuildMessage \
	queue:FuzzEnvelopeRoundTrip queue:FuzzDecodeEnvelope queue:FuzzDecodeRecord queue:FuzzReplay \
	config:FuzzLoadSource intake:FuzzRewriteHeader delivery/dsn:FuzzBuild \
	admin:FuzzInjectRequest delivery/smtpclient:FuzzReadReply delivery/mx:FuzzLookup \
	internal/mime7bit:FuzzConvert internal/msgheader:FuzzParse internal/msgheader:FuzzCountField feedback:FuzzParse \
	dkim:FuzzSign inauth:FuzzVerifyARC dmarcreport:FuzzParseRua dmarcreport:FuzzReportXML

fuzz:
	@failed=; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz: $$name in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg/ || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failing targets:$$failed"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Load benchmarks over loopback (bench/README.md): each builds cuemta and the
# tools, runs for under 2 minutes and prints a summary. Knobs go in the
# environment or on the command line, e.g. `make bench-inject DURATION=3`.
.PHONY: bench-dkim bench-reload bench-cluster bench-peers
bench-inject:
	GO=$(GO) bash bench/run-inject.sh

bench-relay:
	GO=$(GO) bash bench/run-relay.sh

bench-reload:
	GO=$(GO) bash bench/run-reload.sh

bench-dkim:
	GO=$(GO) bash bench/run-dkim.sh

# Shared limits through Redis against local limits, same run (docs/cluster.md).
bench-cluster:
	GO=$(GO) bash bench/run-cluster.sh

# cuemta beside Postfix and no MTA, driven by Postfix's smtp-source into
# smtp-sink (`make bench-deps` installs them; the script installs nothing).
bench-peers:
	GO=$(GO) bash bench/run-peers.sh

clean:
	rm -rf bin
