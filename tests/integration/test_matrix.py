"""`edgecc build`: a small slice of the CI matrix through the real compilers and emulators."""

import json

from tests.conftest import DATA, edgecc_cli


def test_build_matrix_slice(tmp_path):
    (tmp_path / "edgecc.toml").write_text(
        'models = ["ds-cnn"]\ntargets = ["host", "orangepi5-cpu", "orangepi5-mali", "jetson-nano", "cortex-m4"]\n'
        'backends = ["iree", "micro", "tvm"]\njobs = 2\noutput = "out"\n')
    r = edgecc_cli("build", "--config", "edgecc.toml", cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    cells = {(c["target"], c["backend"]): c for c in summary["cells"]}
    assert len(cells) == 9 and summary["counts"] == {"ok": 7, "failed": 0, "refused": 2}
    assert cells[("host", "iree")]["checked"] == "validated on host"
    assert cells[("orangepi5-cpu", "iree")]["checked"].startswith("validated on qemu-aarch64")
    assert "lavapipe" in cells[("orangepi5-mali", "iree")]["checked"]
    assert cells[("orangepi5-mali", "tvm")]["checked"].startswith("not run: needs Mali-G610")
    assert cells[("cortex-m4", "micro")]["checked"] == "validated on qemu-system-arm -M mps2-an386"
    assert cells[("cortex-m4", "micro")]["extra"]["flash_bytes"] > 0
    assert "sm_53" in cells[("jetson-nano", "iree")]["reason"] and cells[("jetson-nano", "tvm")]["status"] == "refused"
    for c in summary["cells"]:
        if c["status"] == "ok":
            bundle = tmp_path / "out" / f"{c['model']}-{c['target']}-{c['backend']}"
            assert c["compile_seconds"] > 0 and bundle.is_dir()
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "| ds-cnn | orangepi5-cpu | iree | ok |" in md and "7 ok, 0 failed, 2 refused" in md


def test_build_fails_when_a_cell_fails(tmp_path):
    # IREE cannot lower aten.fmod: that cell fails with the op named, the TVM cell still builds, the exit is non-zero
    r = edgecc_cli("build", "--models", f"{DATA}/unsupported_ops.py:fmod", "--targets", "host", "--backends",
                   "iree,tvm", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1 and "1 of 2 cell(s) failed" in r.stderr, r.stderr
    cells = {c["backend"]: c for c in json.loads((tmp_path / "out" / "summary.json").read_text())["cells"]}
    assert cells["iree"]["status"] == "failed" and "aten.fmod.Scalar" in cells["iree"]["reason"]
    assert cells["tvm"]["status"] == "ok" and cells["iree"]["model"] == "unsupported_ops-fmod"
    assert not (tmp_path / "out" / "unsupported_ops-fmod-host-iree").exists()
    r = edgecc_cli("build", "--models", "nosuch", cwd=tmp_path)
    assert r.returncode == 4 and "unknown model 'nosuch'" in r.stderr


def test_build_config_errors_are_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text('modles = ["resnet8"]\n')
    r = edgecc_cli("build", "--config", "bad.toml", cwd=tmp_path)
    assert r.returncode == 1 and "unknown key(s) modles; allowed: models" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
