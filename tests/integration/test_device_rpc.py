"""rpc:// devices against a real TVM RPC tracker and RPC server on loopback."""

import json

import pytest

from edgecc.bundle import Bundle
from edgecc.runtime.devices import bench_on_device, parse_device
from tests.conftest import edgecc_cli
from tests.integration.device_servers import start_tvm_rpc

try:
    import tornado  # noqa: F401  (the tracker needs it)
    import tvm.rpc  # noqa: F401
    MISSING = ""
except ImportError as e:
    MISSING = f"TVM RPC tracker needs {e.name} (pip install -e .[full])"

pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "ok")


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = start_tvm_rpc(tmp_path_factory.mktemp("rpc"))
    yield f
    f.stop()


def test_bench_tvm_bundle_through_a_tracker(farm, resnet8_bundles, tmp_path):
    out = tmp_path / "rpc.json"
    r = edgecc_cli("bench", resnet8_bundles["tvm"].path, "--device", farm.url, "--warmup", "1", "--iters", "6",
                   "--chunk", "3", "--json", out)
    assert r.returncode == 0, r.stderr
    run = json.loads(out.read_text())["runs"][0]
    t = run["timing"]
    assert run["device"]["kind"] == "rpc" and run["status"] == "ok"
    assert len(t["samples"]) == 6 and all(s > 0 for s in t["samples"]) and "time_evaluator" in t["method"]
    assert t["extra"]["key"] == "host-x86" and t["extra"]["sessions"] == 1
    # the device was released: a second request for the same key is served at once
    r = edgecc_cli("bench", resnet8_bundles["tvm"].path, "--device", farm.url, "--warmup", "0", "--iters", "2",
                   "--json", out, "--timeout", "60")
    assert r.returncode == 0, r.stderr


def test_unknown_key_times_out_with_a_clear_error(farm, resnet8_bundles):
    r = edgecc_cli("bench", resnet8_bundles["tvm"].path, "--device", f"rpc://127.0.0.1:{farm.port}/no-such-board",
                   "--iters", "2", "--timeout", "5", "--retries", "0")
    assert r.returncode == 12 and "no-such-board" in r.stderr, r.stderr


def test_rpc_server_killed_mid_run_keeps_samples(farm, resnet8_bundles):
    """Last in this module: it kills the farm's only server."""
    bundle = Bundle.load(resnet8_bundles["tvm"].path)

    def kill(done, total):
        if done == 3:
            farm.stop_server()

    t = bench_on_device(bundle, parse_device(farm.url), warmup=0, iters=9, chunk=3, retries=1, timeout=15,
                        on_chunk=kill)
    assert t.partial and len(t.samples) == 3 and "device lost after 3 of 9 samples" in t.partial_reason
