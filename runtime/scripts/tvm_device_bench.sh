#!/bin/sh
# Time this edgecc bundle on the device's @DEVICE@ with TVM's Python runtime (tvm_device.py): the device is
# synchronized after every call, raw samples kept.
#   usage: ./bench.sh [ITERATIONS] [OUT.json] [WARMUP] [INPUT.npy ...]   (default inputs: the bundle's)
# Writes {"samples_ms": [...], "warmup": W, "iterations": N, "device": ...}.
# Needs: pip install apache-tvm==@TVM_VERSION@ (set PYTHON to the interpreter that has it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
iters=${1:-50}
out=${2:-bench.json}
warmup=${3:-5}
if [ $# -gt 3 ]; then shift 3; else set --; fi
exec "${PYTHON:-python3}" "$here/tvm_device.py" bench "${EDGECC_DEVICE:-@DEVICE@}" "$iters" "$warmup" "$out" "$@"
