#!/bin/bash
# Build this edgecc bundle's TensorRT engine on the device, or reuse the cached one; prints the engine path last.
#   usage: ./build_engine.sh
# Needs TensorRT @TRT_VERSION@ (@TRT_SOURCE@): trtexec ($TRTEXEC, PATH or /usr/src/tensorrt/bin/trtexec), else the
# TensorRT Python module (python3 -c 'import tensorrt', or $PYTHON) through trt_tool.py. Engines are cached in
# ${EDGECC_TRT_CACHE:-~/.cache/edgecc/tensorrt}, keyed by (TensorRT version, GPU name, sha256 of model.onnx, sha256 of
# plan.json); a failed build leaves no engine behind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${EDGECC_TRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgecc/tensorrt}
python=${PYTHON:-python3}

die() { echo "build_engine.sh: error: $*" >&2; exit 1; }

find_trtexec() {
  if [ -n "${TRTEXEC:-}" ]; then
    [ -x "$TRTEXEC" ] || die "TRTEXEC=$TRTEXEC is not an executable file"
    echo "$TRTEXEC"
  elif command -v trtexec >/dev/null 2>&1; then
    command -v trtexec
  elif [ -x /usr/src/tensorrt/bin/trtexec ]; then
    echo /usr/src/tensorrt/bin/trtexec
  fi
}

gpu_name() {
  local name=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
  fi
  if [ -z "$name" ] && [ -r /proc/device-tree/model ]; then  # Jetson: the module's name
    name=$(tr -d '\0' < /proc/device-tree/model)
  fi
  echo "${name:-unknown-gpu}"
}

trtexec=$(find_trtexec)
if [ -n "$trtexec" ]; then
  # trtexec prints "&&&& RUNNING TensorRT.trtexec [TensorRT v8201] ..." first
  version=$("$trtexec" --help 2>&1 | sed -n 's/.*\[TensorRT v\([0-9]*\)\].*/v\1/p' | head -n 1 || true)
  version=${version:-unknown}
elif "$python" -c 'import tensorrt' >/dev/null 2>&1; then
  version=$("$python" -c 'import tensorrt; print(tensorrt.__version__)')
else
  die "TensorRT not found: no trtexec (\$TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec) and no Python module tensorrt ($python); install TensorRT @TRT_VERSION@ (@TRT_SOURCE@) on this device"
fi
if [ ! -r "$here/model.onnx" ] || [ ! -r "$here/plan.json" ]; then die "model.onnx or plan.json missing beside $0"; fi

gpu=$(gpu_name)
onnx_sha=$(sha256sum "$here/model.onnx" | cut -d ' ' -f 1)
plan_sha=$(sha256sum "$here/plan.json" | cut -d ' ' -f 1)
key=$(printf '%s|%s|%s|%s' "$version" "$gpu" "$onnx_sha" "$plan_sha" | sha256sum | cut -c 1-32)
mkdir -p "$cache"
engine="$cache/$key.engine"
if [ -s "$engine" ]; then
  echo "build_engine.sh: cached engine (TensorRT $version, $gpu)" >&2
  echo "$engine"
  exit 0
fi

tmp="$engine.tmp.$$"
trap 'rm -f "$tmp"' EXIT
timing_cache="$cache/timing-$(printf '%s-%s' "$version" "$gpu" | tr -c 'A-Za-z0-9._-' '_').cache"
log="$cache/$key.build.log"
echo "build_engine.sh: building the engine (TensorRT $version, $gpu); log: $log" >&2
if [ -n "$trtexec" ]; then
  "$trtexec" --onnx="$here/model.onnx" --saveEngine="$tmp" --timingCacheFile="$timing_cache" @BUILD_FLAGS@ \
    > "$log" 2>&1 || die "trtexec could not build the engine (exit $?); see $log"
else
  "$python" "$here/trt_tool.py" build --onnx "$here/model.onnx" --plan "$here/plan.json" --engine "$tmp" \
    --timing-cache "$timing_cache" > "$log" 2>&1 || die "the TensorRT Python API could not build the engine (exit $?); see $log"
fi
[ -s "$tmp" ] || die "no engine was written; see $log"
mv -f "$tmp" "$engine"
printf '{"tensorrt": "%s", "gpu": "%s", "onnx_sha256": "%s", "plan_sha256": "%s", "target": "@TARGET@"}\n' \
  "$version" "$gpu" "$onnx_sha" "$plan_sha" > "$cache/$key.json"
echo "$engine"
