#!/usr/bin/env bash
# Runs every fuzz target of the module, one after another, each for the
# time given as the first argument (a go test -fuzztime: 30s, 2m, 1000x;
# default 30s). Targets are found per package with `go test -list`, so a
# new one is run without being listed here. Stops at the first failure,
# naming the package and the target; go test has then written the failing
# input under the package's testdata/fuzz/.
#
#   ./scripts/fuzz.sh          # or: make fuzz
#   ./scripts/fuzz.sh 2m       # or: make fuzz FUZZTIME=2m
#
# FUZZMINIMIZETIME (default 5s) bounds the minimization of each new input,
# which go test otherwise lets take 60s of a target's time: a slow target
# (FuzzSourceMPEGTS plays every input over HTTP) would spend its run
# minimizing.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${1:-30s}"
minimize="${FUZZMINIMIZETIME:-5s}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# fuzz_once runs one target, its output to the terminal and to $log.
fuzz_once() {
  go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" 2>&1 | tee "$log"
}

# coordinator_race tells whether the run in $log failed only with the bare
# "context deadline exceeded" that Go's fuzz coordinator (before Go 1.27,
# golang/go#75804) can report when -fuzztime ends while a worker is busy:
# no input failed, none was written.
coordinator_race() {
  grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written to' "$log"
}

ran=0
for pkg in $(go list ./...); do
  # Fails (and so stops the script) when the package's tests do not build.
  listed=$(go test -list '^Fuzz' "$pkg")
  for target in $(grep '^Fuzz' <<<"$listed" || true); do
    echo "== $pkg $target ($fuzztime)"
    if ! fuzz_once "$pkg" "$target"; then
      if coordinator_race; then
        echo "fuzz: $target in $pkg: the Go fuzz coordinator's deadline race, no failing input; running it again"
        fuzz_once "$pkg" "$target" || {
          echo "fuzz: FAILED: $target in $pkg" >&2
          exit 1
        }
      else
        echo "fuzz: FAILED: $target in $pkg" >&2
        exit 1
      fi
    fi
    ran=$((ran + 1))
  done
done
if [ "$ran" -eq 0 ]; then
  echo "fuzz: no fuzz target found" >&2
  exit 1
fi
echo "fuzz: $ran targets passed, $fuzztime each"
