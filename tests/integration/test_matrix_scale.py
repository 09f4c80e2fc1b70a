"""The two ways `edgecc build` scales out, with the real compilers: CI shards joined by `build merge`, and a real
Ray cluster on loopback (a head and a worker node, 1 CPU each) that loses its worker node mid-cell."""

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgecc.bundle import Bundle, sha256_file
from tests.conftest import DATA, REPO, assert_clean_failure, edgecc_cli
from tests.integration.ray_cluster import RayCluster, free_port

MODELS = f"{DATA}/tiny_factory.py:build"
MODELS_4 = f"{MODELS},{DATA}/tiny_factory.py:two_outputs"
MATRIX = ["--models", MODELS, "--targets", "host", "--backends", "iree,tvm"]  # 2 cells
# the manifest fields that say where and how fast a build ran; everything else, and every file, is the same
BUILD_HOST_FIELDS = (("compile", "seconds"), ("compile", "host"))
# summary cell fields that differ between two builds of one matrix: timing, the folder, the node
RUN_FIELDS = ("compile_seconds", "bundle")
RUN_EXTRA = ("wall_seconds", "node")


def _cells(summary: dict) -> list[dict]:
    out = []
    for c in summary["cells"]:
        c = {k: v for k, v in c.items() if k not in RUN_FIELDS}
        c["extra"] = {k: v for k, v in c["extra"].items() if k not in RUN_EXTRA}
        out.append(c)
    return out


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    """The 4-cell matrix built locally into build/, then moved to local/ (so the Ray build can use the same
    folder, as the calls a manifest records name it)."""
    root = tmp_path_factory.mktemp("scale")
    r = edgecc_cli("build", *MATRIX, "-j", "2", "-o", "build", cwd=root, timeout=600)
    assert r.returncode == 0, r.stderr
    (root / "build").rename(root / "local")
    return root


def test_three_shards_merge_to_the_unsharded_summary(local_build, tmp_path):
    def shard(k):
        return edgecc_cli("build", *MATRIX, "-j", "1", "--shard", f"{k}/3", "-o", f"s{k}", cwd=tmp_path, timeout=600)

    with ThreadPoolExecutor(3) as pool:  # three CI jobs
        results = list(pool.map(shard, (1, 2, 3)))
    for r in results:
        assert r.returncode == 0, r.stderr
    sizes = [len(_summary(tmp_path / f"s{k}")["cells"]) for k in (1, 2, 3)]
    assert sizes == [1, 1, 0]  # 2 cells of one cost (one model file) over 3 shards: the third has none
    r = edgecc_cli("build", "merge", "s3/summary.json", "s1/summary.json", "s2/summary.json", "-o", "merged",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    merged, whole = _summary(tmp_path / "merged"), _summary(local_build / "local")
    assert _cells(merged) == _cells(whole) and merged["counts"] == whole["counts"] == {"ok": 2, "failed": 0,
                                                                                        "refused": 0}
    assert "| tiny_factory-build | host | tvm | ok | validated on host |" in r.stdout
    # one shard's summary missing: the merge says which cells and which shard, and fails
    r = edgecc_cli("build", "merge", "s1/summary.json", "s3/summary.json", "-o", "part", cwd=tmp_path)
    assert_clean_failure(r, 1, "1 cell(s) missing (tiny_factory-build-host-tvm", "no summary of shard(s) 2")
    # a shard of another matrix (a target that refuses the backend: nothing to compile): refused before anything
    # is written
    r = edgecc_cli("build", "--models", f"{DATA}/tiny_factory.py:build", "--targets", "jetson-nano", "--backends",
                   "tvm", "--shard", "1/3", "-o", "other", cwd=tmp_path)
    assert r.returncode == 0 and "0 ok, 0 failed, 1 refused" in r.stdout, r.stderr
    r = edgecc_cli("build", "merge", "other/summary.json", "s2/summary.json", "s3/summary.json", "-o", "bad",
                   cwd=tmp_path)
    assert_clean_failure(r, 15, "shards of different matrices")
    assert not (tmp_path / "bad").exists()


def test_a_damaged_bundle_from_a_worker_is_refused(local_build, tmp_path):
    """What a task hands back is checked hash by hash before it is renamed into place; else the cell fails and
    nothing is written."""
    from edgecc.compiler.matrix import Cell
    from edgecc.compiler.matrix_ray import _tar, install

    good = local_build / "local" / "tiny_factory-build-host-tvm"
    damaged = tmp_path / "damaged"
    shutil.copytree(good, damaged)
    with open(damaged / "model.so", "r+b") as f:
        f.seek(100)
        f.write(bytes([f.read(1)[0] ^ 0xFF]))
    for payload, why in [(("tar", _tar(damaged)), "model.so"), (("tar", _tar(good)[:5000]), "not a whole tar"),
                         (("path", str(shutil.copytree(damaged, tmp_path / "drop" / "a" / "b"))), "model.so")]:
        cell = Cell("tiny_factory-build", "host", "tvm", status="ok")
        install(cell, payload, tmp_path / "out" / cell.name)
        assert cell.status == "failed" and why in cell.reason, cell.reason
        assert list((tmp_path / "out").iterdir()) == []  # no bundle, no temp folder
    assert not (tmp_path / "drop" / "a").exists()  # a handed-back path is removed either way
    cell = Cell("tiny_factory-build", "host", "tvm", status="ok")
    install(cell, ("tar", _tar(good)), tmp_path / "out" / cell.name)
    assert cell.status == "ok" and Bundle.load(tmp_path / "out" / cell.name)


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt", "link"])
def test_a_tar_with_paths_out_of_the_bundle_is_refused(member, tmp_path):
    import io
    import tarfile

    from edgecc.compiler.matrix import Cell
    from edgecc.compiler.matrix_ray import install

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    cell = Cell("tiny_factory-build", "host", "tvm", status="ok")
    install(cell, ("tar", buf.getvalue()), tmp_path / "out" / cell.name)
    # refused as it unpacks, or (tarfile's data filter strips a leading /) unpacked inside and not a bundle
    assert cell.status == "failed", cell.reason
    assert list((tmp_path / "out").iterdir()) == [] and not (tmp_path / "escape.txt").exists()
    assert not Path("/abs.txt").exists()


@pytest.mark.parametrize("shard", ["0/4", "5/4", "a/b"])
def test_bad_shard_is_one_line(shard, tmp_path):
    r = edgecc_cli("build", *MATRIX, "--shard", shard, cwd=tmp_path)
    assert_clean_failure(r, 2, "--shard: 'a/b': write it as K/N" if shard == "a/b" else
                         f"--shard: {shard}: K must be from 1 to 4")
    assert not (tmp_path / "build").exists()


def test_merge_and_costs_usage_errors(tmp_path):
    assert_clean_failure(edgecc_cli("build", "merge", cwd=tmp_path), 2, "needs the shard summaries")
    assert_clean_failure(edgecc_cli("build", "marge", "a.json", cwd=tmp_path), 2, "unexpected argument 'marge'")
    assert_clean_failure(edgecc_cli("build", *MATRIX, "--costs", "prev.json", cwd=tmp_path), 2,
                         "--costs balances shards: use it with --shard K/N")
    assert_clean_failure(edgecc_cli("build", *MATRIX, "--shard", "1/2", "--costs", "prev.json", cwd=tmp_path), 15,
                         "summary prev.json does not exist")
    assert not (tmp_path / "build").exists()


@pytest.fixture(scope="module")
def cluster():
    c = RayCluster(workers=1).start()
    try:
        yield c
    finally:
        c.stop()


def _manifest_without_host(bundle) -> dict:
    m = json.loads((bundle / "manifest.json").read_text())
    for section, key in BUILD_HOST_FIELDS:
        m[section].pop(key)
    return m


def _same_bundles(local, built):
    """Every bundle of `built` is byte-identical to the one in `local`, apart from BUILD_HOST_FIELDS."""
    for c in _summary(local)["cells"]:
        name = f"{c['model']}-{c['target']}-{c['backend']}"
        a, b = local / name, built / name
        assert _manifest_without_host(a) == _manifest_without_host(b), name
        files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*"))
        assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*"))
        for f in files:
            if f not in ("manifest.json", "manifest.sha256"):
                assert sha256_file(a / f) == sha256_file(b / f), (name, f)
        Bundle.load(b)  # every hash checks
    # nothing half-written: the bundles and the summary, no temp or attempt folders
    assert sorted(p.name for p in built.iterdir()) == sorted(
        [f"{c['model']}-{c['target']}-{c['backend']}" for c in _summary(local)["cells"]] + ["summary.json",
                                                                                          "summary.md"])


def test_ray_worker_node_killed_mid_cell(cluster, local_build):
    """A small matrix on the cluster; the first cell that starts on the worker node is killed with its node (every
    process SIGKILLed, as when its machine dies). Ray reruns it on the head; the summary is complete and every
    bundle is byte-identical to the local build's."""
    argv = [sys.executable, "-m", "edgecc", "build", *MATRIX, "-o", "build", "--executor", f"ray://{cluster.address}"]
    driver = subprocess.Popen(argv, cwd=local_build, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and driver.poll() is None:
            running = [p for p in cluster.processes(1) if _title(p).startswith("ray::build ")]
            if running:
                time.sleep(2)  # let the compile get under way
                killed = _title(running[0]).removeprefix("ray::build ").strip()
                cluster.kill_node(1)
            time.sleep(0.2)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed, "no cell started on the worker node"
    assert driver.returncode == 0, err
    summary, local = _summary(local_build / "build"), _summary(local_build / "local")
    assert _cells(summary) == _cells(local) and summary["executor"] == f"ray://{cluster.address}"
    cells = {f"{c['model']}-{c['target']}-{c['backend']}": c for c in summary["cells"]}
    assert killed in cells and cells[killed]["status"] == "ok"
    nodes = [c["extra"]["node"] for c in summary["cells"]]
    assert all(re.fullmatch(r"\S+ \([0-9a-f]{8}\)", n) for n in nodes), nodes  # address (node id)
    # the worker node died before any cell finished there: every cell was built by the one live node, the head
    assert len(set(nodes)) == 1 and "| node |" in out
    assert len(err.strip().splitlines()) == len(cells) and f"edgecc: [{len(cells)}/{len(cells)}] " in err  # progress
    _same_bundles(local_build / "local", local_build / "build")


@pytest.mark.slow
def test_ray_build_by_tar_stream_is_byte_identical(tmp_path_factory):
    """Four cells on a fresh cluster (head + 2 workers), every bundle handed back as a tar stream."""
    root = tmp_path_factory.mktemp("tar")
    matrix = ["--models", MODELS_4, "--targets", "host", "--backends", "iree,tvm"]
    r = edgecc_cli("build", *matrix, "-j", "2", "-o", "build", cwd=root, timeout=600)
    assert r.returncode == 0, r.stderr
    (root / "build").rename(root / "local")
    c = RayCluster(workers=2).start()
    try:
        r = edgecc_cli("build", *matrix, "-o", "build", "--executor", f"ray://{c.address}", "--ray-transfer", "tar",
                       cwd=root, timeout=600)
    finally:
        c.stop()
    assert r.returncode == 0, r.stderr
    assert _cells(_summary(root / "build")) == _cells(_summary(root / "local"))
    assert len({c["extra"]["node"] for c in _summary(root / "build")["cells"]}) > 1  # spread over the nodes
    _same_bundles(root / "local", root / "build")


def _title(p) -> str:
    try:
        return (p.cmdline() or [""])[0]
    except Exception:  # exited meanwhile
        return ""


def test_ray_address_that_does_not_answer(tmp_path):
    port = free_port()
    t0 = time.monotonic()
    r = edgecc_cli("build", *MATRIX, "--executor", f"ray://127.0.0.1:{port}", "--ray-timeout", "5", cwd=tmp_path)
    assert_clean_failure(r, 12, f"the Ray cluster at 127.0.0.1:{port} does not answer", "ray start --head")
    # something listens there, but it is not Ray: bounded by --ray-timeout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # the kernel completes connections; nothing ever answers on them
        r = edgecc_cli("build", *MATRIX, "--executor", f"ray://127.0.0.1:{s.getsockname()[1]}", "--ray-timeout",
                       "5", cwd=tmp_path, timeout=120)
    assert_clean_failure(r, 12, "cannot join the Ray cluster at 127.0.0.1:")
    assert time.monotonic() - t0 < 60 and not (tmp_path / "build").exists()
    r = edgecc_cli("build", *MATRIX, "--executor", "ray:/nowhere", cwd=tmp_path)
    assert_clean_failure(r, 2, "expected local, ray or ray://HOST:PORT")


def test_without_ray_the_error_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from edgecc.compiler.cli import main; "
            f"sys.exit(main(['build', '--models', {MODELS!r}, '--targets', 'host', '--executor', 'ray']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert_clean_failure(r, 10, "pip install edgecc[ray]")
    assert (REPO / "pyproject.toml").read_text().count('"ray==2.60.*"') == 2  # in [ray] and in [full]
