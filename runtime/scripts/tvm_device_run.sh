#!/bin/sh
# Run one inference of this edgecc bundle on the device's @DEVICE@ with TVM's Python runtime (tvm_device.py).
#   usage: ./run.sh [OUT_DIR] [INPUT.npy ...]   (default: the bundle's reference inputs, outputs into .)
# Needs: pip install apache-tvm==@TVM_VERSION@ (set PYTHON to the interpreter that has it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.}
[ $# -gt 0 ] && shift
exec "${PYTHON:-python3}" "$here/tvm_device.py" run "${EDGECC_DEVICE:-@DEVICE@}" "$out" "$@"
