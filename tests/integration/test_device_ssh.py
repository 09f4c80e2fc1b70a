"""ssh:// devices against a real OpenSSH sshd on loopback (started here, host-key checking on in the client).
The "device" is this machine: the host IREE bundle's run.sh / bench.sh run there with iree-base-runtime
installed by `edgecc deploy` into a venv on the device (from a local wheelhouse, so the test is offline)."""

import json
import subprocess
import sys

import pytest

from edgecc.bundle import Bundle
from edgecc.errors import DeviceError
from edgecc.runtime.devices import SshOptions, bench_on_device, parse_device
from tests.conftest import edgecc_cli
from tests.integration.device_servers import sshd_missing_reason, start_sshd

pytestmark = pytest.mark.skipif(bool(sshd_missing_reason()), reason=sshd_missing_reason() or "ok")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    s = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """iree-base-runtime and its dependencies as wheels (pip's own cache / index), for an offline device."""
    d = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(d), "iree-base-runtime==3.13.0"],
                   check=True, capture_output=True, timeout=600)
    return d


@pytest.fixture(scope="module")
def deployed(sshd, wheelhouse, resnet8_bundles, tmp_path_factory):
    """`edgecc deploy` of the host IREE bundle to the loopback device (first run: copies and installs)."""
    dev = tmp_path_factory.mktemp("device")
    args = [*sshd.cli_args(), "--remote-dir", str(dev / "bundle"), "--venv", str(dev / "venv"),
            "--device-python", "/usr/bin/python3", f"--pip-arg=--find-links={wheelhouse}", "--pip-arg=--no-index"]
    r = edgecc_cli("deploy", resnet8_bundles["iree"].path, "--device", sshd.url, *args, "--json")
    return r, args, dev


def test_deploy_over_ssh_end_to_end_then_idempotent(deployed, sshd, resnet8_bundles):
    r, args, dev = deployed
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["install"] == "installed" and done["runtime"] == "iree-base-runtime==3.13.0"
    assert "model.vmfb" in done["files_copied"] and done["files_unchanged"] == 0
    assert done["artifact"] == f"{dev / 'bundle'}/model.vmfb" and (dev / "bundle" / "model.vmfb").is_file()
    assert done["max_abs_error"] < 1e-4
    assert (dev / "venv" / "bin" / "iree-benchmark-module").is_file()
    # second deploy: nothing copied, nothing installed, still checked
    r2 = edgecc_cli("deploy", resnet8_bundles["iree"].path, "--device", sshd.url, *args)
    assert r2.returncode == 0, r2.stderr
    assert "already installed" in r2.stdout and "0 file(s) copied" in r2.stdout and "matches the reference" in r2.stdout
    # a changed file on the device is copied again (only that one)
    (dev / "bundle" / "run.sh").write_text("#!/bin/sh\nexit 3\n")
    r3 = edgecc_cli("deploy", resnet8_bundles["iree"].path, "--device", sshd.url, *args, "--json")
    assert r3.returncode == 0, r3.stderr
    assert json.loads(r3.stdout)["files_copied"] == ["run.sh"]


def test_deploy_exit_codes_say_what_failed(deployed, sshd, resnet8_bundles, tmp_path):
    r, args, dev = deployed
    # host key not the one in known_hosts -> copy/connect failure (12), never a prompt
    (tmp_path / "kh").write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
                                 "AAAAC3NzaC1lZDI1NTE5AAAAIBn3nxQVm2cRnbzN0qaXq3bGn9t7uLhX9nZfXgk1J6xq\n")
    bad = [a if a != str(sshd.known_hosts) else str(tmp_path / "kh") for a in args]
    r = edgecc_cli("deploy", resnet8_bundles["iree"].path, "--device", sshd.url, *bad)
    assert r.returncode == 12 and "ssh failed" in r.stderr, r.stderr
    # install failure (13): a runtime venv that pip cannot fill offline
    inst = [*args[:4], "--remote-dir", str(tmp_path / "b2"), "--venv", str(tmp_path / "v2"), "--device-python",
            "/usr/bin/python3", "--pip-arg=--no-index", f"--pip-arg=--find-links={tmp_path}"]
    r = edgecc_cli("deploy", resnet8_bundles["iree"].path, "--device", sshd.url, *inst)
    assert r.returncode == 13 and "pip" in r.stderr, r.stderr


def test_bench_over_ssh_with_the_devices_runtime(deployed, sshd, resnet8_bundles, tmp_path):
    r, args, dev = deployed
    assert r.returncode == 0, r.stderr
    out = tmp_path / "ssh.json"
    r = edgecc_cli("bench", resnet8_bundles["iree"].path, "--device", sshd.url, *args, "--warmup", "1", "--iters",
                   "4", "--chunk", "2", "--json", out, "--baselines", "ort")
    assert r.returncode == 0, r.stderr
    run = json.loads(out.read_text())["runs"][0]
    t = run["timing"]
    assert run["device"] == {"spec": sshd.url, "kind": "ssh"} and run["status"] == "ok"
    assert len(t["samples"]) == 4 and all(s > 0 for s in t["samples"]) and "over ssh" in t["method"]
    assert t["extra"]["chunks"] == 2 and t["extra"]["device_env"]["os"].startswith("Linux")
    assert run["baselines"][0]["status"] == "not run" and "needs onnxruntime" in run["baselines"][0]["reason"]


def test_device_dropped_mid_benchmark_keeps_samples_and_marks_partial(deployed, sshd, resnet8_bundles):
    """sshd killed after the first chunk: the retries fail for real (connection refused); the first chunk's
    samples are kept and the run is partial with the reason."""
    r, args, dev = deployed
    assert r.returncode == 0, r.stderr
    opts = SshOptions(identity=str(sshd.identity), known_hosts=str(sshd.known_hosts),
                      remote_dir=str(dev / "bundle"), venv=str(dev / "venv"))
    bundle = Bundle.load(resnet8_bundles["iree"].path)

    def drop(done, total):
        if done == 2:
            sshd.stop()

    try:
        t = bench_on_device(bundle, parse_device(sshd.url), warmup=0, iters=6, ssh=opts, chunk=2, retries=1,
                            on_chunk=drop, timeout=60)
        assert t.partial and len(t.samples) == 2 and all(s > 0 for s in t.samples)
        assert "device lost after 2 of 6 samples" in t.partial_reason and "Connection refused" in t.partial_reason
        # nothing reachable at all: an error, never an empty (zero) timing
        with pytest.raises(DeviceError, match="Connection refused"):
            bench_on_device(bundle, parse_device(sshd.url), warmup=0, iters=2, ssh=opts, retries=1, timeout=30)
    finally:
        sshd.start_again()


def test_bad_device_specs_are_one_line_errors(resnet8_bundles):
    r = edgecc_cli("bench", resnet8_bundles["iree"].path, "--device", "telnet://x")
    assert r.returncode == 3 and "unknown device 'telnet://x'" in r.stderr and len(r.stderr.splitlines()) == 1
    r = edgecc_cli("bench", resnet8_bundles["iree"].path, "--device", "qemu")
    assert r.returncode == 3 and "use --device host" in r.stderr
    r = edgecc_cli("bench", resnet8_bundles["iree"].path, "--device", "rpc://127.0.0.1:9/k")
    assert r.returncode == 3 and "rpc:// devices run TVM bundles" in r.stderr
