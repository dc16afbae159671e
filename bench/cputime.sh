#!/bin/bash
# CPU time per op of the serial benchmarks, for a shared machine where
# wall-clock ns/op swings with other people's load: time spent descheduled
# is not counted. For each benchmark: a short wall-clock run picks N (about
# 0.5 s of work) and gives allocs/op; then RUNS runs of exactly N ops each,
# alternating benchmarks, are timed with bash's `time` (user+sys CPU, ms
# resolution) minus the CPU of a run that measures nothing. The result lines
# are in go test's format, so cmd/benchtable prints the medians.
#   RUNS   runs per benchmark (default 5)
#   BENCH  benchmark regexp (default: every serial benchmark)
# The parallel benchmark is left out: its CPU time is summed over threads.
set -eu
cd "$(dirname "$0")"
RUNS=${RUNS:-5}
BENCH=${BENCH:-'^Benchmark(Success|FailTwiceThenSucceed|BreakerClosed|BreakerOpenReject)$'}
bin=$(mktemp "${TMPDIR:-/tmp}/rebound-bench-bin.XXXXXX")
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" .

TIMEFORMAT='%U %S'
cpu() { # cpu args... : prints the CPU seconds the run used
	{ time "$bin" -test.run '^$' "$@" >/dev/null; } 2>&1 | awk '{print $1 + $2}'
}
base=$(for _ in 1 2 3; do cpu -test.bench '^$'; done | sort -g | head -1)

# Calibration: name, ns/op, allocs/op per benchmark.
declare -a names n allocs
while read -r name _ ns _ rest; do
	names+=("$name")
	n+=("$(awk -v ns="$ns" 'BEGIN { n = int(5e8 / ns); print (n < 1000 ? 1000 : n) }')")
	allocs+=("$(echo "$rest" | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") print $i}')")
done < <("$bin" -test.run '^$' -test.bench "$BENCH" -test.benchtime 0.1s | grep '^Benchmark')

for _ in $(seq "$RUNS"); do
	for i in "${!names[@]}"; do
		name=${names[$i]%-*}            # BenchmarkX/lib
		top=${name%%/*}
		sub=${name#*/}
		s=$(cpu -test.bench "^${top}\$/^${sub//+/\\+}\$" -test.benchtime "${n[$i]}x")
		awk -v name="${names[$i]}" -v s="$s" -v base="$base" -v n="${n[$i]}" -v a="${allocs[$i]}" \
			'BEGIN { printf "%s\t%d\t%.2f ns/op\t%s allocs/op\n", name, n, (s - base) * 1e9 / n, a }'
	done
done
