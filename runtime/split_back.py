"""The back of a split model, fed from the front's stream: read a tensor frame, run the back bundle, print or save
its output.

    python -m edgecc.runtime.split_back BACK_BUNDLE STREAM [--output out.npy]

STREAM is a file of frames (what the front wrote in QEMU) or a serial device the front's UART is wired to (set it
raw first: `stty -F /dev/ttyUSB0 921600 raw -echo`); it is read until one whole frame has arrived.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgecc.errors import DeviceRunError, EdgeccError
from edgecc.runtime.frame import MAGIC, read_frames


def read_stream(path: Path, max_bytes: int = 64 << 20) -> np.ndarray:
    """The first frame's tensor from a file or a character device (read until the frame is complete)."""
    data = b""
    with open(path, "rb", buffering=0) as f:
        while len(data) < max_bytes:
            chunk = f.read(65536)
            if not chunk:
                break
            data += chunk
            if MAGIC in data:
                try:
                    return read_frames(data, str(path))[0]
                except DeviceRunError as e:
                    if "cut short" not in str(e):
                        raise
    return read_frames(data, str(path))[0]


def run_back(bundle_path, stream) -> list[np.ndarray]:
    """The back bundle's outputs on the cut tensor read from `stream`, checked against the bundle's input."""
    from edgecc.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    cut = read_stream(Path(stream))
    (spec,) = bundle.manifest["io"]["inputs"]
    if list(cut.shape) != list(spec["shape"]) or str(cut.dtype) != spec["dtype"]:
        raise DeviceRunError(f"{stream} sent {cut.dtype} {list(cut.shape)}, the back takes {spec['dtype']} "
                             f"{spec['shape']}: the front and back are from different splits")
    return bundle.runner().run([cut])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgecc.runtime.split_back", description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("stream")
    p.add_argument("--output", "-o", help="save output 0 to this .npy")
    a = p.parse_args(argv)
    try:
        outputs = run_back(a.bundle, a.stream)
    except EdgeccError as e:
        print(f"edgecc: error: {e}", file=sys.stderr)
        return e.exit_code
    if a.output:
        np.save(a.output, outputs[0])
    for i, o in enumerate(outputs):
        flat = ", ".join(f"{x:.5g}" for x in o.ravel()[:8])
        print(f"output {i}: shape {list(o.shape)} {o.dtype} [{flat}{', ...' if o.size > 8 else ''}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
