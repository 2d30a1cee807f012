# runtime-attestor: the two commands a newcomer needs are `make run` and
# `make test`; everything else is here for maintainers.
SHELL   := /bin/bash
GO      ?= go
# Static executables: the daemon and plugins restrict themselves with
# Landlock, which a cgo build cannot do reliably inside a PID namespace
# (docs/deployment.md). The test binaries may still use cgo (the TPM
# simulator). grpcnotrace leaves out gRPC's golang.org/x/net/trace, which
# nothing here uses and every plugin process would initialise at its start.
BUILD   := CGO_ENABLED=0 $(GO) build -trimpath -tags=grpcnotrace
# The installed executables without a symbol table or DWARF (-s -w): a
# third smaller, so a third less to hash (the daemon digests each plugin
# at every start and the launcher checks its own) and to page in. Panic
# traces still name functions and lines (from pclntab, which -s keeps).
LDFLAGS := -ldflags=-s\ -w
# The launcher (cmd/attestor-launcher) is C: it runs between the daemon's
# fork and each plugin's first instruction, and a Go runtime start there
# cost about 2 ms of CPU per plugin start (docs/performance.md, "The
# launcher"). Static, so that it loads no library, and against musl: a
# static glibc program spends about 0.5 ms of CPU before main probing the
# CPU's caches with CPUID, which traps to the hypervisor in a VM; musl's
# start costs 0.03 ms. LAUNCHER_CC=cc builds it against glibc instead.
# internal/testbin builds it with the same compiler and flags.
LAUNCHER_CC ?= musl-gcc
LAUNCHER_CFLAGS := -O2 -static -std=c11 -Wall -Wextra -Werror
BIN     := bin
# The built-in plugins: one cmd/attestor-check-<name> main each (package
# builtin is their registry; its tests keep the two in step).
PLUGINS := $(patsubst cmd/attestor-check-%,%,$(wildcard cmd/attestor-check-*))
RUNDIR  := .run
PROTOC_GEN_GO_VERSION      := v1.36.12
GOLANGCI_LINT_VERSION      := v2.15.0
GOLANGCI_LINT              := $(BIN)/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)

.PHONY: all build testbins deps test run run-reset proto bench stress fuzz install tpm-demo clean vet lint fmt

all: build

deps:
	@./scripts/install-deps.sh

# One go build per folder: it links the executables in parallel.
build:
	@LAUNCHER_CC="$(LAUNCHER_CC)" LAUNCHER_CFLAGS="$(LAUNCHER_CFLAGS)" ./scripts/install-deps.sh --build
	@mkdir -p $(BIN)/plugins
	$(BUILD) $(LDFLAGS) -o $(BIN)/ ./cmd/runtime-attestor ./cmd/attestctl
	$(LAUNCHER_CC) $(LAUNCHER_CFLAGS) -o $(BIN)/attestor-launcher cmd/attestor-launcher/attestor-launcher.c
	$(BUILD) $(LDFLAGS) -o $(BIN)/plugins/ $(addprefix ./cmd/attestor-check-,$(PLUGINS))

# Every executable the tests run as a subprocess, built once for the whole
# run into bin/test with a stamp of the source tree (internal/testbin); a
# test process whose tree differs from the stamp builds its own.
testbins:
	$(GO) run ./internal/testbin/prebuild

test: deps testbins
	$(GO) test -race -count=1 ./...

# The fast static checks CI runs beside `make test`: go vet, gofmt and the
# code rules of internal/lint (functions in core/, policy/ and sdk/ at most
# 80 lines; errors compared with errors.Is and errors.As).
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "not gofmt-formatted:"; gofmt -l .; exit 1; }
	$(GO) test -count=1 ./internal/lint/

# golangci-lint with .golangci.yml (errorlint, funlen, dupl, staticcheck,
# ...). The pinned version is built once into bin/tools (a few minutes).
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)/tools
	GOBIN=$(CURDIR)/$(BIN)/tools/.golangci-lint $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/tools/.golangci-lint/golangci-lint $@
	rmdir $(BIN)/tools/.golangci-lint

# Starts the daemon in the foreground on 127.0.0.1:8505 with the development
# policy; creates a development HMAC key, API token and policy under .run/
# once, and keeps your edits to .run/development.yaml.
run: build
	@./scripts/dev-run.sh

# Drops .run/development.yaml (your edits with it) so that the next
# `make run` renders the template again; keys, token and audit log stay.
run-reset:
	rm -f $(RUNDIR)/development.yaml $(RUNDIR)/development.yaml.rendered

# The messages only: the check service's gRPC stubs are written by hand in
# internal/wire/checkrpc, so that a plugin's executable links no grpc-go.
proto:
	@./scripts/install-deps.sh
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	PATH=$(CURDIR)/$(BIN)/tools:$$PATH protoc --proto_path=internal/wire/attestorv1 \
	  --go_out=internal/wire/attestorv1 --go_opt=paths=source_relative \
	  check.proto

# As root: the daemon under the unit's limits (a cgroup with 10% of one CPU,
# MemoryMax, TasksMax, GOMAXPROCS=1) beside openssl and a bare HTTP server;
# writes bench/RESULTS.md (docs/performance.md).
bench: deps build
	@./scripts/bench.sh

stress: deps build
	@./scripts/stress.sh

fuzz:
	@./scripts/fuzz.sh

# make install DESTDIR=/tmp/root PREFIX=/usr
install: build
	@PLUGINS="$(PLUGINS)" ./scripts/install.sh "$(DESTDIR)" "$(or $(PREFIX),/usr)"

tpm-demo: deps build
	@./scripts/tpm-demo.sh

clean:
	rm -rf $(BIN) $(RUNDIR)
