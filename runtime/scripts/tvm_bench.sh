#!/bin/sh
# Time this edgecc bundle on the device with TVM's runtime: each call timed with steady_clock, raw samples kept.
#   usage: ./bench.sh [ITERATIONS] [OUT.json] [WARMUP] [INPUT.npy ...]   (default inputs: the bundle's)
# Writes {"samples_ms": [...], "warmup": W, "iterations": N}.
# Needs libtvm_runtime.so + libtvm_ffi.so: pip install apache-tvm==@TVM_VERSION@ (pulls apache-tvm-ffi);
# they are found through python3, or set TVM_LIBRARY_PATH=<dir of libtvm_runtime.so>:<dir of libtvm_ffi.so>.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
iters=${1:-50}
out=${2:-bench.json}
warmup=${3:-5}
[ $# -gt 3 ] && shift 3 || set --
if [ $# -eq 0 ]; then set -- @DEFAULT_INPUTS@; fi
if [ -z "${TVM_LIBRARY_PATH:-}" ]; then
  TVM_LIBRARY_PATH=$(${PYTHON:-python3} -c 'import importlib.util as u, os
print(":".join(os.path.join(os.path.dirname(u.find_spec(p).origin), "lib") for p in ("tvm", "tvm_ffi")))' 2>/dev/null) || {
    echo "bench.sh: libtvm_runtime.so not found: pip install apache-tvm==@TVM_VERSION@ or set TVM_LIBRARY_PATH" >&2; exit 1; }
fi
LD_LIBRARY_PATH="$TVM_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
runner=${TVM_RUNNER:-$here/tvm_runner}
"$runner" --bench "$iters" "$warmup" "$here/@MODULE@" @FUNCTION@ - "$@" > "$out"
