#!/bin/sh
# Run this edgecc cascade once on the device: the little model answers if it is confident enough
# (@POLICY@ >= @THRESHOLD@), otherwise the big model runs on the same input.
#   usage: ./run.sh [OUT_DIR] [INPUT.npy]   (default: the little bundle's reference input, outputs into .)
# Writes OUT_DIR/output_0.npy (the answering model's output) and prints which model answered.
# Needs what little/run.sh and big/run.sh need, and python3 with numpy (cascade_policy.py).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.}
input=${2:-$here/little/input_0.npy}
mkdir -p "$out/little"
"$here/little/run.sh" "$out/little" "$input" >/dev/null
if ${PYTHON:-python3} "$here/cascade_policy.py" decide "$out/little/output_0.npy" @POLICY@ @THRESHOLD@; then
  cp "$out/little/output_0.npy" "$out/output_0.npy"
  echo "edgecc: answered by little"
else
  mkdir -p "$out/big"
  "$here/big/run.sh" "$out/big" "$input" >/dev/null
  cp "$out/big/output_0.npy" "$out/output_0.npy"
  echo "edgecc: answered by big"
fi
