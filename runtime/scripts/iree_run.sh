#!/bin/sh
# Run one inference of this edgecc bundle on the device with IREE's runtime.
#   usage: ./run.sh [OUT_DIR] [INPUT.npy ...]   (default: the bundle's reference inputs, outputs into .)
# Needs iree-run-module: pip install iree-base-runtime==@IREE_VERSION@ (or set IREE_RUN_MODULE).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.}
[ $# -gt 0 ] && shift
mkdir -p "$out"
set -- "$@"
if [ $# -eq 0 ]; then set -- @DEFAULT_INPUTS@; fi
args=""
for f in "$@"; do args="$args --input=@$f"; done
outs=""
for i in $(seq 0 $((@NUM_OUTPUTS@ - 1))); do outs="$outs --output=@$out/output_$i.npy"; done
# shellcheck disable=SC2086
exec ${IREE_RUN_MODULE:-iree-run-module} --device=@DEVICE@ --module="$here/@MODULE@" --function=@FUNCTION@ $args $outs
