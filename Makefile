# rotini — build, test, lint and benchmark.
#   make build   static bin/rotini (+ bin/testapp, bin/demo-app when their sources exist)
#   make run     the demo: bin/rotini -c config.hcl.example, serving on 127.0.0.1:8000
#   make test    deps, gofmt check, go vet, go test -race (what CI runs via .ci/run)
#   make lint    gofmt check, go vet, the forbidden-API check (tools/forbid)
#   make bench   deps, build, bench/run.sh (as root; writes bench/RESULTS.md)
#   make clean

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# ENTRY links rotini's own process entry point, which records the signal
# state rotini inherits before the Go runtime changes it (sigstate.EntryFlag;
# the sigstate tests check that every build of rotini here passes it).
ENTRY   := -E=github.com/rotini-dev/rotini/sigstate.entry
LDFLAGS := -s -w -X main.version=$(VERSION) $(ENTRY)

.PHONY: all build run test lint fmt-check vet forbid bench deps deps-test deps-bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/rotini .
	@if [ -d test/demoapp ]; then \
		echo "CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-app ./test/demoapp"; \
		CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-app ./test/demoapp; fi
	@if [ -d test/testapp ]; then \
		echo "CGO_ENABLED=0 $(GO) build -trimpath -o bin/testapp ./test/testapp"; \
		CGO_ENABLED=0 $(GO) build -trimpath -o bin/testapp ./test/testapp; fi

run: build
	./bin/rotini -c config.hcl.example

deps: ; bash scripts/deps.sh all
deps-test: ; bash scripts/deps.sh test
deps-bench: ; bash scripts/deps.sh bench

fmt-check:
	@out=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l) || { echo "gofmt: failed"; exit 1; }; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting (gofmt -w):"; echo "$$out"; exit 1; fi; \
	echo "gofmt: ok"

vet:
	$(GO) vet ./...

forbid:
	$(GO) test -count=1 ./tools/forbid/

test: deps-test fmt-check vet
	$(GO) test -race -count=1 -parallel 4 -timeout 50m ./...

lint: fmt-check vet forbid

bench: deps-bench build
	bash bench/run.sh

clean:
	rm -rf bin/ bench/out/ bench/orphanstorm/orphanstorm coverage.out coverage.html *.coverprofile
