import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def require_cortex_m_tools() -> None:
    """Skip the calling test module unless arm-none-eabi-gcc and qemu-system-arm are installed (make setup)."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                        "qemu-system-arm)", allow_module_level=True)


def has_avx512_vnni() -> bool:
    """This CPU has AVX-512 VNNI (where TVM's --quantize int8 builds run integer kernels)."""
    try:
        return " avx512_vnni" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def calibration_folder(folder: Path, samples) -> str:
    """A --calibration folder holding `samples` (an N x ... array) as samples.npy."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "samples.npy", samples)
    return str(folder)


def int8_reference(net, cal, x):
    """(the quantized QGraph, its int8 outputs on each row of `x`): the quantization an int8 compile calibrated on
    `cal` makes (deterministic: same graph, same samples), run by the numpy TFLite-arithmetic reference."""
    import numpy as np
    import torch

    from edgecc.compiler.squeeze.quant import calibrate, capture_graph, quantize_graph, run_int8

    g = capture_graph(net, torch.from_numpy(x[:1]))
    quantize_graph(g, calibrate(g, cal))
    return g, np.concatenate([run_int8(g, x[i:i + 1]) for i in range(len(x))])


def edgecc_cli(*args, cwd=None, timeout=900):
    """Run the real `edgecc` CLI in a subprocess; returns CompletedProcess with text output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def assert_clean_failure(r, code, *needles, out_dir=None):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stderr)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("edgecc: error: ") and "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    if out_dir is not None:
        assert list(out_dir.parent.iterdir()) == [] if out_dir.parent.exists() else True, \
            list(out_dir.parent.iterdir())


@pytest.fixture(scope="session")
def resnet8_bundles(tmp_path_factory):
    """resnet8 compiled for host with both backends, once per session."""
    import edgecc

    root = tmp_path_factory.mktemp("bundles")
    return {b: edgecc.compile("resnet8", target="host", backend=b, output=root / f"resnet8-{b}")
            for b in ("iree", "tvm")}
