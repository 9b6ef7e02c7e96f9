# Tools are pinned and installed into .bin by the targets that need them.
BIN          := $(CURDIR)/.bin
BUF_VERSION  := 1.75.0
BUF          := $(BIN)/node_modules/.bin/buf

.PHONY: build test generate lint check-generated ci bench tools benchstat

build:
	go build -o $(BIN)/intentpdp ./cmd/intentpdp

test:
	./scripts/test.sh

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(BIN) @bufbuild/buf@$(BUF_VERSION)

tools: $(BUF)

generate: $(BUF)
	$(BUF) generate

lint: $(BUF)
	$(BUF) lint
	go vet ./...
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)

# check-generated fails when the committed generated code differs from what
# proto/ generates.
check-generated: $(BUF)
	rm -rf $(BIN)/gen && $(BUF) generate -o $(BIN)/gen
	cd $(BIN)/gen/proto && for f in $$(find . -name '*.go'); do \
	  cmp -s $$f $(CURDIR)/proto/$$f || { echo "generated code is stale: $$f (run make generate)"; exit 1; }; done
	test "$$(find $(BIN)/gen/proto -name '*.go' | wc -l)" = "$$(find proto -name '*.pb.go' | wc -l)" || { echo "generated file set differs (run make generate)"; exit 1; }

ci: lint check-generated test

# bench runs the Go benchmark suite (bench/) and the load generator against
# an in-process server with its gRPC echo floor; results land in
# .bin/bench/. Narrow with BENCH='Decide' or shorten with COUNT=1.
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT := $(BIN)/benchstat
BENCH     ?= .
BENCHTIME ?= 1s
COUNT     ?= 6
LOADFLAGS ?= -scenario p10k-e100k -concurrency 1,32,64 -duration 5s

bench:
	mkdir -p $(BIN)/bench
	bash -o pipefail -c "go test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(COUNT) -timeout 60m ./bench/ | tee $(BIN)/bench/new.txt"
	bash -o pipefail -c "go run ./bench/cmd/load $(LOADFLAGS) | tee $(BIN)/bench/load.txt"

$(BENCHSTAT):
	GOBIN=$(BIN) go install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

# benchstat summarises the last `make bench`, or compares OLD=file with it.
benchstat: $(BENCHSTAT)
	$(BENCHSTAT) $(OLD) $(BIN)/bench/new.txt
