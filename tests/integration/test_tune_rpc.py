"""`edgecc tune --device rpc://...`: MetaSchedule measuring on a real TVM RPC tracker + server on loopback, the
records applied by `edgecc compile` (numerics checked against PyTorch); the refusals that must come before
MetaSchedule starts (it would wait forever for a key no server has); the cross builder for aarch64 targets.

Not tested here: tuning an aarch64 target over RPC end to end. That needs an aarch64 TVM RPC server, i.e. an
aarch64 Python with the apache-tvm wheel under qemu-aarch64; this machine has the aarch64 C/C++ sysroot only.
"""

import json
import shutil

import pytest

from tests.conftest import DATA, edgecc_cli
from tests.integration.device_servers import free_port, start_tvm_rpc

try:
    import tornado  # noqa: F401  (the tracker needs it)
    import tvm.rpc  # noqa: F401
    MISSING = ""
except ImportError as e:
    MISSING = f"TVM RPC tracker needs {e.name} (pip install -e .[full])"

pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "ok")

TINY = f"{DATA / 'tiny_factory.py'}:build"


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = start_tvm_rpc(tmp_path_factory.mktemp("rpc"), key="tune-x86")
    yield f
    f.stop()


@pytest.mark.slow  # ~140 s of MetaSchedule workers and RPC sessions (make test-all)
def test_tune_over_rpc_then_compile_applies_records(farm, tmp_path):
    db = tmp_path / "db"
    p = edgecc_cli("tune", TINY, "--target", "host", "--device", farm.url, "--trials", "4", "--database", db)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"on {farm.url}" in p.stdout and "0 -> " in p.stdout, p.stdout[-2000:]
    records = [json.loads(line) for line in (db / "database_tuning_record.json").read_text().splitlines()]
    assert records and all(r[1][1] and max(r[1][1]) < 1e9 for r in records)  # measured run times, not failures
    assert all(r[1][2].get("num-cores", 0) >= 1 for r in records)  # asked from the device's TVM runtime

    out = tmp_path / "tuned"
    p = edgecc_cli("compile", TINY, "--target", "host", "--backend", "tvm", "--option", f"tuning_db={db}",
                   "-o", out)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["artifact"]["info"]["tuned_functions"] >= 1 and m["validation"]["passed"]


def test_no_server_under_the_key_is_one_line_and_writes_nothing(farm, tmp_path):
    db = tmp_path / "db"
    p = edgecc_cli("tune", TINY, "--device", f"rpc://127.0.0.1:{farm.port}/no-such-board", "--trials", "4",
                   "--database", db, "--timeout", "10", timeout=120)
    assert p.returncode == 12, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "no-such-board" in p.stderr and "tune-x86" in p.stderr
    assert not db.exists()


def test_unreachable_tracker_is_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "db"
    p = edgecc_cli("tune", TINY, "--device", f"rpc://127.0.0.1:{free_port()}/k", "--trials", "4",
                   "--database", db, "--timeout", "10", timeout=120)
    assert p.returncode == 12 and p.stderr.strip().count("\n") == 0 and "cannot reach the tracker" in p.stderr
    assert not db.exists()


def test_cross_target_is_allowed_with_an_rpc_device(farm, tmp_path):
    """orangepi5-cpu is refused without --device (test_tune.py); with one it gets as far as asking the tracker."""
    p = edgecc_cli("tune", TINY, "--target", "orangepi5-cpu", "--device", f"rpc://127.0.0.1:{farm.port}/rk3588",
                   "--database", tmp_path / "db", "--timeout", "10", timeout=120)
    assert p.returncode == 12 and "'rk3588'" in p.stderr and "does not run here" not in p.stderr, p.stderr
    assert not (tmp_path / "db").exists()


def test_gpu_target_is_refused(tmp_path):
    p = edgecc_cli("tune", TINY, "--target", "cuda-sm80", "--device", "rpc://127.0.0.1:9190/jetson",
                   "--database", tmp_path / "db", timeout=120)
    assert p.returncode == 3 and "CPU targets" in p.stderr and not (tmp_path / "db").exists(), p.stderr


@pytest.mark.parametrize("device, code, words", [("rpc://no-port/k", 3, "unknown device"),
                                                 ("ssh://pi@board", 3, "TVM RPC tracker")])
def test_device_that_is_not_an_rpc_url_is_refused(tmp_path, device, code, words):
    p = edgecc_cli("tune", TINY, "--device", device, "--database", tmp_path / "db", timeout=120)
    assert p.returncode == code and words in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert not (tmp_path / "db").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None, reason="needs g++-aarch64-linux-gnu")
def test_cross_builder_exports_an_aarch64_shared_object(tmp_path):
    """The builder `--device` uses for a cross target (orangepi5-cpu): MetaSchedule's LocalBuilder, in its own
    worker processes, exporting with the target's cross compiler."""
    import functools

    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    from edgecc.compiler.backends.tvm.tuning import export_cross

    a = te.placeholder((64,), name="a")
    b = te.compute((64,), lambda i: a[i] * 2.0, name="b")
    mod = tvm.IRModule({"main": te.create_prim_func([a, b])})
    target = tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76", "num-cores": 4})
    builder = ms.builder.LocalBuilder(max_workers=1, timeout_sec=120,
                                      f_export=functools.partial(export_cross, "aarch64-linux-gnu-g++"))
    [res] = builder.build([ms.builder.BuilderInput(mod, target)])
    assert res.error_msg is None, res.error_msg
    head = open(res.artifact_path, "rb").read(20)
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
