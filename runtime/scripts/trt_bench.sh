#!/bin/bash
# Time this edgecc bundle's TensorRT engine on the device, keeping the raw per-inference samples.
#   usage: ./bench.sh [OUT_DIR] [ITERATIONS] [WARMUP_MS]      (defaults: trt-bench 200 500)
# Writes OUT_DIR/trtexec.log (summary), OUT_DIR/times.json (--exportTimes: every inference), OUT_DIR/profile.json
# (--exportProfile: per-layer times, from a separate profiling run). Without trtexec, trt_tool.py writes the same
# files with the TensorRT Python API. Turn them into edgecc's report on any machine:
#   edgecc trtexec-report OUT_DIR/trtexec.log --times OUT_DIR/times.json --profile OUT_DIR/profile.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
out=${1:-trt-bench}
iters=${2:-200}
warmup=${3:-500}

die() { echo "bench.sh: error: $*" >&2; exit 1; }

engine=$("$here/build_engine.sh" | tail -n 1)
[ -s "$engine" ] || die "build_engine.sh gave no engine"
mkdir -p "$out"
trtexec=${TRTEXEC:-$(command -v trtexec || true)}
if [ -z "$trtexec" ] && [ -x /usr/src/tensorrt/bin/trtexec ]; then trtexec=/usr/src/tensorrt/bin/trtexec; fi
if [ -n "$trtexec" ]; then
  "$trtexec" --loadEngine="$engine" @RUN_FLAGS@ --warmUp="$warmup" --iterations="$iters" --duration=0 \
    --exportTimes="$out/times.json" --exportProfile="$out/profile.json" --separateProfileRun --dumpProfile \
    > "$out/trtexec.log" 2>&1 || die "trtexec failed (exit $?); see $out/trtexec.log"
else
  "$python" "$here/trt_tool.py" bench --engine "$engine" --plan "$here/plan.json" --iterations "$iters" \
    --warmup-ms "$warmup" --out "$out" > "$out/trtexec.log" 2>&1 || die "trt_tool.py bench failed; see $out/trtexec.log"
fi
echo "bench.sh: raw samples in $out/times.json, per-layer profile in $out/profile.json, summary in $out/trtexec.log"
