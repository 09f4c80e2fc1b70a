"""The peers as baselines (issue 22): OpenVINO and ExecuTorch with XNNPACK timed beside an edgecc bundle, each in
its own process with the same threads, really run on a tiny model; the report and benchmarks/host_vs_baselines.py
name the fastest peer and edgecc's ratio to it; a peer that is not installed says which extra installs it."""

import importlib.util
import json
import sys

import pytest

import edgecc
from edgecc.compiler.frontends import load_model
from edgecc.runtime.baselines import run_baselines
from tests.conftest import DATA, REPO, edgecc_cli

pytest.importorskip("openvino")
pytest.importorskip("executorch")

TINY = f"{DATA / 'tiny_factory.py'}:build"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The tiny model's IREE bundle, where benchmarks/host_vs_baselines.py --work looks for it."""
    d = tmp_path_factory.mktemp("peers")
    bench = _benchmark_module()
    edgecc.compile(TINY, target="host", backend="iree", output=bench.folder(d, TINY, "host-iree"))
    return d


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("edgecc_host_vs_baselines", REPO / "benchmarks" /
                                                  "host_vs_baselines.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_times_openvino_and_executorch_and_names_the_fastest_peer(work, tmp_path):
    bundle = _benchmark_module().folder(work, TINY, "host-iree")
    out = tmp_path / "r.json"
    r = edgecc_cli("bench", bundle, "--baselines", "ort,openvino,executorch", "--threads", "1", "--warmup", "1",
                   "--iters", "6", "--json", out, "--markdown", tmp_path / "r.md")
    assert r.returncode == 0, r.stderr
    run = json.loads(out.read_text())["runs"][0]
    base = {b["name"]: b for b in run["baselines"]}
    assert {n: b["status"] for n, b in base.items()} == {"onnxruntime": "ok", "openvino": "ok",
                                                          "executorch-xnnpack": "ok"}, base
    for b in base.values():  # each really ran the model: right numbers, its own samples, one thread
        assert b["max_abs_error"] < 1e-5 and len(b["timing"]["samples"]) == 6 and b["timing"]["extra"]["threads"] == 1
    ov, et = base["openvino"]["timing"]["extra"], base["executorch-xnnpack"]["timing"]["extra"]
    assert ov["INFERENCE_PRECISION_HINT"] == "f32" and ov["INFERENCE_NUM_THREADS"] == "1"
    assert et["delegate"] == "XnnpackBackend" and et["threadpool_threads"] == 1 and et["ops_outside_xnnpack"] == []
    p50 = {n: b["timing"]["stats"]["p50"] for n, b in base.items()}
    peer = run["fastest_peer"]
    assert peer["name"] == min(p50, key=p50.get)
    assert peer["ratio"] == pytest.approx(run["timing"]["stats"]["p50"] / p50[peer["name"]])
    assert f"fastest peer: {peer['name']}" in r.stdout and f"{peer['ratio']:.2f}x {peer['name']}'s" in r.stdout
    assert f"| {peer['ratio']:.2f}x {peer['name']} |" in (tmp_path / "r.md").read_text()


def test_a_peer_not_installed_is_not_run_with_the_extra_to_install(work, monkeypatch):
    from edgecc.bundle import Bundle

    bundle = Bundle.load(_benchmark_module().folder(work, TINY, "host-iree"))
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` sees where it is not installed
    monkeypatch.setitem(sys.modules, "executorch", None)
    got = run_baselines(bundle, ["openvino", "executorch"], "host", 1, 2, 1, 1.0, load_model=load_model)
    assert [(b["status"], b["reason"]) for b in got] == [
        ("not run", "not run: pip install edgecc[openvino] (openvino is not installed)"),
        ("not run", "not run: pip install edgecc[executorch] (executorch is not installed)")]


def test_host_benchmark_rotates_the_peers_and_names_the_bar(work, monkeypatch, capsys):
    bench = _benchmark_module()
    monkeypatch.setitem(sys.modules, "executorch", None)  # a peer missing here: "not run", the others still run
    out = work / "bench.json"
    assert bench.main(["--models", TINY, "--runtimes", "ort", "openvino", "executorch", "iree", "--threads", "1",
                       "--rounds", "2", "--iters", "3", "--warmup", "1", "--work", str(work), "--json", str(out)]) == 0
    row = json.loads(out.read_text())["models"][TINY]
    assert row["executorch"] == {"not_run": "not run: pip install edgecc[executorch] (executorch is not installed)"}
    for kind in ("ort", "openvino", "iree"):
        assert len(row[kind]["samples"]) == 6, kind  # 3 per round, 2 rounds
    for kind in ("ort", "openvino"):
        assert row[kind]["max_abs_error"] < 1e-5 and row[kind]["setup"]["threads"] == 1, kind
    peer = min(("ort", "openvino"), key=lambda k: row[k]["p50_ms"])
    assert row["fastest_peer"]["name"] == peer
    assert row["iree"]["ratio_to_fastest_peer"] == pytest.approx(row["iree"]["p50_ms"] / row[peer]["p50_ms"])
    assert row["iree"]["p90_over_p50"] == pytest.approx(row["iree"]["stats"]["p90"] / row["iree"]["p50_ms"])
    md = capsys.readouterr().out
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {TINY} |"))
    assert f"| {bench.LABELS[peer]} | {row['iree']['ratio_to_fastest_peer']:.2f}× |" in line
    assert "not run: pip install edgecc[executorch]" in line and "**bar**" in line
