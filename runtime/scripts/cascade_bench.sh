#!/bin/sh
# Time both models of this edgecc cascade on the device with their own bench.sh, and print the cascade's expected
# latency: little's for every input + big's for the fraction calibration sent to it (@TO_BIG@).
#   usage: ./bench.sh [OUT_DIR]   (default .: little.json and big.json, each bundle's raw samples)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.}
mkdir -p "$out"
"$here/little/bench.sh" 50 "$out/little.json" >/dev/null
"$here/big/bench.sh" 50 "$out/big.json" >/dev/null
exec ${PYTHON:-python3} "$here/cascade_policy.py" expected "$out/little.json" "$out/big.json" @TO_BIG@
