#!/bin/sh
# Run one inference of this edgecc bundle on the device with TVM's runtime (the Relax VM in model.so).
#   usage: ./run.sh [OUT_DIR] [INPUT.npy ...]   (default: the bundle's reference inputs, outputs into .)
# Needs libtvm_runtime.so + libtvm_ffi.so: pip install apache-tvm==@TVM_VERSION@ (pulls apache-tvm-ffi);
# they are found through python3, or set TVM_LIBRARY_PATH=<dir of libtvm_runtime.so>:<dir of libtvm_ffi.so>.
# tvm_runner is edgecc's runner (source: edgecc/runtime/tvm_native/runner.cc); set TVM_RUNNER to use another.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.}
[ $# -gt 0 ] && shift
mkdir -p "$out"
if [ $# -eq 0 ]; then set -- @DEFAULT_INPUTS@; fi
if [ -z "${TVM_LIBRARY_PATH:-}" ]; then
  TVM_LIBRARY_PATH=$(${PYTHON:-python3} -c 'import importlib.util as u, os
print(":".join(os.path.join(os.path.dirname(u.find_spec(p).origin), "lib") for p in ("tvm", "tvm_ffi")))' 2>/dev/null) || {
    echo "run.sh: libtvm_runtime.so not found: pip install apache-tvm==@TVM_VERSION@ or set TVM_LIBRARY_PATH" >&2; exit 1; }
fi
LD_LIBRARY_PATH="$TVM_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
runner=${TVM_RUNNER:-$here/tvm_runner}
exec "$runner" "$here/@MODULE@" @FUNCTION@ "$out" "$@"
