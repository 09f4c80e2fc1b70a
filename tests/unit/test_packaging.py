"""`import edgecc` needs no toolchain, and the wheel installs only the `edgecc` package."""

import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_import_edgecc_loads_no_heavy_toolchain():
    code = ("import sys, edgecc, edgecc.targets, edgecc.compiler.cli; edgecc.get_target('host'); "
            "heavy = [m for m in ('torch', 'tvm', 'iree.compiler', 'iree.runtime', 'torch_mlir', 'onnx') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_toolchain_is_one_line_naming_the_package():
    code = ("import sys; sys.modules['tvm'] = None\n"
            "from edgecc.compiler.cli import main; raise SystemExit(main(['compile', 'resnet8', '-b', 'tvm', "
            "'--no-validate', '-o', '/tmp/edgecc-never-written']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 10
    assert out.stderr.strip().count("\n") == 0
    assert "pip install apache-tvm==0.27.0.post1" in out.stderr


def test_wheel_installs_only_edgecc(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edgecc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("edgecc-")}
    assert top == {"edgecc"}, top
    for sub in ("targets/host.toml", "runtime/bench.py", "models/zoo.py"):
        assert f"edgecc/{sub}" in names
    # every module of every subpackage ships (a package missing from pyproject's list would be left out)
    for folder in ("compiler", "runtime", "targets", "models", "edgecc"):
        for py in (REPO / folder).rglob("*.py"):
            rel = py.relative_to(REPO / folder).as_posix()
            shipped = f"edgecc/{rel}" if folder == "edgecc" else f"edgecc/{folder}/{rel}"
            assert shipped in names, f"{folder}/{rel} is not in the wheel: add its package to pyproject.toml"
