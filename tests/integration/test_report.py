"""The issue's done-when: resnet8 timed on the host (with baselines), an aarch64 bundle under qemu-aarch64 and a
Cortex-M bundle under qemu-system-arm, merged into one HTML report that renders in headless Chromium with
its plots; `report compare` passes an unchanged pair and catches an injected regression."""

import copy
import json
import re
import shutil
import subprocess
import tempfile

import pytest

import edgecc
from tests.conftest import edgecc_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render_dom(page) -> str:
    """The DOM after Chromium loaded and laid out the page (no network, throwaway profile)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", f"file://{page}"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def reports(resnet8_bundles, tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    a64 = edgecc.compile("resnet8", target="orangepi5-cpu", backend="iree", output=d / "b-a64")
    m4 = edgecc.compile("resnet8", target="cortex-m4", board="mps2-an386", output=d / "b-m4")
    runs = {"host": (resnet8_bundles["iree"].path, "host", ["--baselines", "ort,torch", "--threads", "1",
                                                             "--warmup", "2", "--iters", "8"]),
            "a64": (a64.path, "qemu", ["--warmup", "0", "--iters", "2"]),
            "m4": (m4.path, "qemu", ["--warmup", "1", "--iters", "2"])}
    for name, (bundle, device, extra) in runs.items():
        r = edgecc_cli("bench", bundle, "--device", device, *extra, "--json", d / "runs" / f"{name}.json")
        assert r.returncode == 0, f"{name}: {r.stderr}"
    return d


def test_report_of_host_aarch64_qemu_and_cortex_m_renders_with_plots(reports):
    page = reports / "report.html"
    r = edgecc_cli("report", reports / "runs", "-o", page, "--markdown", reports / "report.md")
    assert r.returncode == 0, r.stderr
    assert "3 run(s)" in r.stdout
    html = page.read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium; `make setup` does)")
    dom = render_dom(page)
    # one latency plot per kind of measurement: host ms, emulated aarch64 ms, Cortex-M instructions
    ms = re.search(r'<svg[^>]*id="latency-ms".*?</svg>', dom, re.S).group(0)
    emu = re.search(r'<svg[^>]*id="latency-emulated-ms".*?</svg>', dom, re.S).group(0)
    ins = re.search(r'<svg[^>]*id="latency-instructions".*?</svg>', dom, re.S).group(0)
    assert ms.count('class="artifact"') == 1 and ms.count('class="sample"') == 8
    assert "resnet8 · host · iree @ host" in ms
    assert emu.count('class="sample"') == 2 and "orangepi5-cpu" in emu
    assert ins.count('class="sample"') == 2 and "cortex-m4" in ins
    bars = re.search(r'<svg[^>]*id="baselines".*?</svg>', dom, re.S).group(0)
    assert bars.count('class="bar"') == 3 and "onnxruntime" in bars and "pytorch-eager" in bars
    foot = re.search(r'<svg[^>]*id="mcu-footprint".*?</svg>', dom, re.S).group(0)
    assert foot.count('class="bar"') == 2 and "/ 4096 KiB" in foot  # flash and RAM of the mps2-an386
    assert "emulated wall clock (qemu-aarch64" in dom and "QEMU icount (instructions, not time)" in dom
    md = (reports / "report.md").read_text()
    assert md.count("| resnet8 |") == 3 and "edgecc speedup" in md


def test_report_json_keeps_raw_samples_and_environment(reports):
    doc = json.loads((reports / "runs" / "host.json").read_text())
    assert doc["schema"] == "edgecc.report/1"
    run = doc["runs"][0]
    t = run["timing"]
    assert len(t["samples"]) == 8 and t["warmup"] == 2 and t["unit"] == "ms" and "wall clock" in t["method"]
    assert set(t["stats"]) >= {"min", "p50", "p90", "p99", "mean", "std", "n"}
    assert run["numerics"]["reference"] == "pytorch" and run["numerics"]["max_abs_error"] < 1e-4
    assert run["artifact"]["bytes"] > 0 and run["compile_seconds"] > 0
    assert {b["name"]: b["status"] for b in run["baselines"]} == {"onnxruntime": "ok", "pytorch-eager": "ok"}
    for b in run["baselines"]:
        assert b["max_abs_error"] < 1e-4 and b["speedup"] > 0 and len(b["timing"]["samples"]) == 8
    env = doc["environment"]
    assert env["cpu"] and env["os"].startswith("Linux") and "iree-base-runtime" in env["tools"]
    m4 = json.loads((reports / "runs" / "m4.json").read_text())["runs"][0]
    assert m4["timing"]["unit"] == "instructions" and m4["memory"]["flash_bytes"] > 0


def test_report_compare_is_a_ci_gate(reports, tmp_path):
    base = reports / "runs" / "host.json"
    r = edgecc_cli("report", "compare", base, base, "--max-regression", "10%")
    assert r.returncode == 0 and "no regression beyond 10%" in r.stdout, r.stdout + r.stderr
    doc = json.loads(base.read_text())
    slow = copy.deepcopy(doc)
    slow["runs"][0]["timing"]["samples"] = [s * 1.5 for s in slow["runs"][0]["timing"]["samples"]]
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    r = edgecc_cli("report", "compare", base, tmp_path / "slow.json", "--max-regression", "10%")
    assert r.returncode != 0 and "FAIL" in r.stdout and "+50.0%" in r.stdout and "regression" in r.stderr
    r = edgecc_cli("report", "compare", base, tmp_path / "slow.json", "--max-regression", "60%")
    assert r.returncode == 0, r.stderr
    wrong = copy.deepcopy(doc)
    wrong["runs"][0]["numerics"]["max_abs_error"] = 0.05
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    r = edgecc_cli("report", "compare", base, tmp_path / "wrong.json")
    assert r.returncode != 0 and "max abs error" in r.stdout
    r = edgecc_cli("report", "compare", base, reports / "runs" / "m4.json")
    assert r.returncode != 0 and "missing from the new report" in r.stdout


def test_deploy_cortex_m_boots_in_qemu_and_a_board_says_what_is_missing(reports, tmp_path):
    r = edgecc_cli("deploy", reports / "b-m4", "--device", "qemu")
    assert r.returncode == 0, r.stderr
    assert "firmware.elf" in r.stdout and "qemu-system-arm -M mps2-an386" in r.stdout
    assert "matches the reference" in r.stdout
    r = edgecc_cli("deploy", reports / "b-m4", "--device", "board")
    assert r.returncode == 11 and "no flash command" in r.stderr
    nucleo = edgecc.compile("cifar-cnn", target="cortex-m4", board="NUCLEO-L4R5ZI", output=tmp_path / "nucleo")
    r = edgecc_cli("deploy", nucleo.path, "--device", "board:NUCLEO-L4R5ZI")
    if shutil.which("pyocd"):
        pytest.skip("pyocd is installed here; the missing-tool message is not exercised")
    assert r.returncode == 11 and "pyocd is not installed (pip install pyocd)" in r.stderr
    assert "pyocd flash --target stm32l4r5zitx firmware.hex" in r.stderr
