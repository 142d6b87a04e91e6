# Build, run and test valkey-iungo. `make run` and `make test` install what
# is missing first (scripts/install-deps.sh).
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

.PHONY: all deps build binaries run test unit lint bench clean valkey-versions test-versions

all: build

deps:
	@scripts/install-deps.sh

build: deps binaries

# The two binaries, without installing anything: the Dockerfile runs this.
# A Go c-shared library is written 0644; valkey refuses a module file that
# is not executable.
binaries:
	$(GO) build -buildmode=c-shared -o build/iungo.so ./cgo
	@rm -f build/iungo.h
	chmod +x build/iungo.so
	CGO_ENABLED=0 $(GO) build -o build/iungo-server ./cmd/iungo-server

# valkey-server with the module, following a local iungo-server that serves
# the example namespace and its web UI.
run: build
	scripts/run.sh $(if $(DATA),--data "$(DATA)")

# The whole suite: unit tests and integration tests against real servers.
test: build lint
	$(GO) test -count=1 -timeout 20m ./...

# The other Valkey versions we support, built from Debian's source packages
# into build/valkey/<version>/bin (scripts/valkey-versions.txt lists them);
# a version already built is kept.
valkey-versions:
	@scripts/valkey-versions.sh

# The integration suite against each of them; make test runs it against
# the default server (bookworm-backports' valkey-server). VALKEY_SERVER
# points the tests at a server binary, and at the cli and benchmark beside it.
VERSIONS = $(shell grep -v '^[[:space:]]*\(\#\|$$\)' scripts/valkey-versions.txt | cut -d' ' -f1)
test-versions: build valkey-versions
	@set -e; for v in $(VERSIONS); do \
	  echo "== Valkey $$v"; \
	  VALKEY_SERVER=$(CURDIR)/build/valkey/$$v/bin/valkey-server $(GO) test -count=1 -timeout 20m ./itest/; \
	done

# Unit tests only: no server, no cgo.
unit:
	CGO_ENABLED=0 $(GO) test -short ./router/ ./scripting/ ./module/ ./iungo/...

# Benchmarks, not part of make test: the router's lookups, then every
# scenario of bench/ side by side (docs/BENCHMARKS.md explains the table).
bench: build
	$(GO) test -run '^$$' -bench Lookup -count 10 ./router/ | tee build/router-bench.txt
	BENCH_ROUTER_FILE=$(CURDIR)/build/router-bench.txt \
	  $(GO) test -run '^$$' -bench Scenarios -benchtime 1x -timeout 60m ./bench/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf build
