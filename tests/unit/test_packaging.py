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
    for sub in ("compiler/cli.py", "compiler/backends/iree/backend.py", "targets/host.toml", "runtime/bench.py",
                "models/zoo.py"):
        assert f"edgecc/{sub}" in names
