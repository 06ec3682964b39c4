#!/bin/sh
# bench.sh runs the benchmarks in the lab and writes docs/bench.md with the
# machine they ran on. Numbers from a shared machine are noisy: compare
# medians and ratios from one run, not runs from different days.
#
#   bench.sh              every benchmark; docs/bench.md is written afresh
#   bench.sh PATTERN      the benchmarks whose test names match PATTERN (a
#                         go test -run pattern, such as 'Install|Upgrade'):
#                         their sections of docs/bench.md are replaced (or
#                         added), each saying when and at which commit it ran
#                         alone; the other sections stay as they were
#
# The fleet-scale benchmark (TestBenchScale) runs only when asked for by
# name (make scale: bench.sh Scale, with CALICO_BENCH_TIMEOUT=4h); it
# also writes docs/scale/*.svg. CALICO_BENCH_TIMEOUT bounds the run (30m).
# CALICO_BENCH_BASELINE, paths of other calico binaries separated by
# colons (an older commit's build, say), are measured beside ./calico by
# the process-start benchmark, under the same load.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root (sudo make bench)" >&2; exit 1; }
pattern=${1:-}
# The machine as the run starts: a section run alone says what it ran on
# (these machines differ from day to day and are shared).
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
load=$(cut -d' ' -f1-3 /proc/loadavg)
# The commit and the time as the run starts: ./calico is built from the
# tree at the start, and a long run (make scale) may end after commits.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- . ':!docs' 2>/dev/null || commit="$commit+changes"
started=$(date -u +%Y-%m-%dT%H:%MZ)
out=$(mktemp)
trap 'rm -f "$out" "$out.merged"' EXIT
skip=
[ -n "$pattern" ] || skip='^TestBenchScale$'
rc=0
# The lab hosts' logs are kept (/tmp/calico-e2e-logs/<lab>-<test>/): a
# figure that surprises can only be explained from them afterwards.
CALICO_E2E_KEEP_LOGS=${CALICO_E2E_KEEP_LOGS:-1} CALICO_E2E=1 CALICO_BENCH=1 CALICO_BENCH_OUT="$out" CALICO="$PWD/calico" \
	go test -count=1 -p 1 -timeout "${CALICO_BENCH_TIMEOUT:-30m}" -run "^TestBench${pattern:+.*($pattern)}" ${skip:+-skip "$skip"} ./e2e/ || rc=$?
# A full run that failed writes nothing; a run by pattern keeps the
# sections its benchmarks wrote before failing (the fleet-scale one writes
# after each size) and still fails.
[ "$rc" = 0 ] || [ -n "$pattern" ] || exit "$rc"

mkdir -p docs
if [ -n "$pattern" ] && [ -f docs/bench.md ]; then
	[ -s "$out" ] || { echo "bench.sh: no benchmark matched '$pattern' or none wrote its section" >&2; exit 1; }
	# Each new section replaces the old one of the same title, with a
	# line saying when it ran.
	awk -v newf="$out" -v note="_Run alone on $started, commit $commit (\`scripts/bench.sh '$pattern'\`), on $cpu, kernel $(uname -r), load average $load at the start; the Machine section is of the last full run._" '
	BEGIN {
		while ((getline line < newf) > 0) {
			if (line ~ /^## /) { title = line; order[++n] = title; text[title] = line "\n\n" note "\n"; continue }
			if (title != "") text[title] = text[title] line "\n"
		}
	}
	/^## / { skip = 0; if ($0 in text) { printf "%s", text[$0]; done[$0] = 1; skip = 1; next } }
	!skip { print }
	END { for (i = 1; i <= n; i++) if (!(order[i] in done)) printf "%s", text[order[i]] }
	' docs/bench.md > "$out.merged"
	mv "$out.merged" docs/bench.md
	cat docs/bench.md
	exit "$rc"
fi
{
	echo "# Benchmarks"
	echo
	echo "Written by \`sudo make bench\` (scripts/bench.sh). Each run replaces this file."
	echo
	echo "## Machine"
	echo
	echo "- date: $started, commit $commit"
	echo "- kernel: $(uname -r)"
	echo "- CPU: $cpu"
	echo "- load average at the start: $load"
	echo "- memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
	echo "- Go: $(go env GOVERSION)"
	echo
	cat "$out"
} > docs/bench.md
cat docs/bench.md
