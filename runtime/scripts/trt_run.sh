#!/bin/bash
# Run one inference of this edgecc bundle's TensorRT engine on the device: .npy inputs in, output_N.npy out.
#   usage: ./run.sh [OUT_DIR] [INPUT.npy ...]   (default: the bundle's reference inputs, outputs into .)
# Needs python3 with numpy, and trtexec or the TensorRT Python module (see build_engine.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
out=${1:-.}
[ $# -gt 0 ] && shift
engine=$("$here/build_engine.sh" | tail -n 1)
mkdir -p "$out"
exec "$python" "$here/trt_tool.py" run --engine "$engine" --plan "$here/plan.json" --out "$out" "$@"
