# Tools are pinned and installed into .bin by the targets that need them.
BIN          := $(CURDIR)/.bin
BUF_VERSION  := 1.75.0
BUF          := $(BIN)/node_modules/.bin/buf

.PHONY: build test generate lint check-generated ci bench tools

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
