#!/bin/sh
# Time this edgecc bundle on the device with iree-benchmark-module (device wall clock, raw repetitions kept).
#   usage: ./bench.sh [REPETITIONS] [OUT.json]
# Needs iree-benchmark-module: pip install iree-base-runtime==@IREE_VERSION@ (or set IREE_BENCHMARK_MODULE).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
reps=${1:-50}
out=${2:-bench.json}
args=""
for f in @DEFAULT_INPUTS@; do args="$args --input=@$f"; done
# malloc's large blocks (IREE's transient buffers) on transparent huge pages; glibc < 2.35 and other libcs ignore it
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
# shellcheck disable=SC2086
exec ${IREE_BENCHMARK_MODULE:-iree-benchmark-module} --device=@DEVICE@ --module="$here/@MODULE@" \
  --function=@FUNCTION@ $args --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=false \
  --benchmark_format=json --benchmark_out="$out" --benchmark_out_format=json
