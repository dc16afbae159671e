#!/bin/sh
# Runs the library comparison and prints a Markdown table of the medians.
#   COUNT      runs per benchmark (default 5)
#   BENCHTIME  go test -benchtime per run (default 0.2s)
#   BENCH      benchmark regexp (default: all)
# The raw go test output is kept in $RAW (default: a temporary file) for benchstat.
set -eu
cd "$(dirname "$0")"
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-0.2s}
BENCH=${BENCH:-.}
RAW=${RAW:-$(mktemp "${TMPDIR:-/tmp}/rebound-bench.XXXXXX")}
go test -run '^$' -bench "$BENCH" -benchtime "$BENCHTIME" -count "$COUNT" . >"$RAW"
grep -E '^(goos|goarch|cpu):' "$RAW" || true
echo "go: $(go env GOVERSION), GOMAXPROCS default ($(nproc) CPUs), -count $COUNT -benchtime $BENCHTIME; raw output: $RAW"
echo
go run ./cmd/benchtable <"$RAW"
