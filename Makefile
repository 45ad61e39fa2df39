# Conveniences; the README's commands do not need make.
.PHONY: run test build fuzz

run:
	go run ./cmd/liverelay serve

build:
	go build -o liverelay ./cmd/liverelay

test:
	./scripts/test.sh

# Runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# Measures liverelay against one ffmpeg per relay (bench/relaybench; see
# docs/performance.md). Flags through BENCHFLAGS, e.g. BENCHFLAGS="--n 200 --window 2m".
.PHONY: bench
bench:
	go run ./bench/relaybench $(BENCHFLAGS)
