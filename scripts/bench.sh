#!/bin/sh
# bench.sh runs the benchmarks in the lab and writes docs/bench.md with the
# machine they ran on. Numbers from a shared machine are noisy: compare
# medians and ratios from one run, not runs from different days.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root (sudo make bench)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
CALICO_E2E=1 CALICO_BENCH=1 CALICO_BENCH_OUT="$out" CALICO="$PWD/calico" \
	go test -count=1 -p 1 -timeout 30m -run '^TestBench' ./e2e/

mkdir -p docs
{
	echo "# Benchmarks"
	echo
	echo "Written by \`sudo make bench\` (scripts/bench.sh). Each run replaces this file."
	echo
	echo "## Machine"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "- kernel: $(uname -r)"
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
	echo "- memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
	echo "- Go: $(go env GOVERSION)"
	echo
	cat "$out"
} > docs/bench.md
cat docs/bench.md
