"""`edgecc cascade` end to end: the digits little/big pair as ONE Cortex-M firmware in QEMU (one shared arena, the
policy in C, per-image answers and instruction counts for all 360 test images in one boot), checked against the
PyTorch cascade; the same on the host with IREE; and the refusals: one line, nothing written."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgecc
from edgecc.compiler.cli import main
from edgecc.compiler.compose import CascadeBundle
from edgecc.errors import BundleError
from edgecc.runtime.cascade import score
from edgecc.runtime.runners import QemuCascadeRunner
from tests.conftest import DATA, require_cortex_m_tools

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
require_cortex_m_tools()

TINY = f"{DATA / 'tiny_factory.py'}:build"


@pytest.fixture(scope="module")
def m4(tmp_path_factory):
    out = tmp_path_factory.mktemp("cascade") / "digits-m4"
    return edgecc.cascade("digits-little", "digits-big", target="cortex-m4", calibration="digits", output=out)


def test_one_firmware_two_models_one_arena_sized_for_the_larger(m4):
    mem, li, bi = m4.doc["memory"], m4.little.manifest, m4.big.manifest
    arenas = [b["artifact"]["info"]["memory"]["arena_bytes"] for b in (li, bi)]
    assert mem["arena_bytes"] == max(arenas) < sum(arenas) == mem["arena_sum_bytes"]
    syms = subprocess.run(["arm-none-eabi-nm", str(m4.path / "firmware" / "firmware.elf")], capture_output=True,
                          text=True, check=True).stdout
    arena = [ln.split() for ln in syms.splitlines() if "arena" in ln]
    assert [a[-1] for a in arena] == ["edgecc_cascade_arena"], arena  # the models' own arenas are gone
    for prefix in ("digits_little_run", "digits_big_run", "edgecc_cascade_score"):
        assert f" T {prefix}\n" in syms
    config = (m4.path / "firmware" / "cascade_config.h").read_text()
    assert f"#define EDGECC_CASCADE_ARENA_BYTES {max(arenas)}" in config
    assert f"#define EDGECC_CASCADE_THRESHOLD {m4.doc['threshold']['value']:g}" in config
    assert mem["ram_bytes"] < li["artifact"]["info"]["memory"]["ram_bytes"] + bi["artifact"]["info"]["memory"][
        "ram_bytes"]


def test_validated_against_the_pytorch_cascade_on_both_branches(m4):
    v = m4.doc["validation"]
    assert v["status"] == "passed" and v["branches"] == ["big", "little"] and v["ran_on"].startswith("qemu")
    assert v["max_abs_error"] < 1e-4 and v["same_model_answering"]
    assert CascadeBundle.load(m4.path).doc == m4.doc


def test_auto_threshold_and_the_measured_run_of_all_360_test_images(m4):
    t, m, c = m4.doc["threshold"], m4.doc["measured"], m4.doc["costs"]
    assert t["how"].startswith("auto") and 0 < t["value"] < 1
    assert m["samples"] == 360 and m["one_boot"] and len(m["per_image"]["cost"]) == 360
    assert m["agreement_with_pytorch_cascade"] == 1.0 and m["agreement_on_model_answering"] == 1.0
    assert m["drop_vs_big_points"] <= 0.5  # the bar, on images neither training nor calibration saw
    assert m["saving_vs_big_expected"] >= 0.5 and m["saving_vs_big_measured"] >= 0.5
    who, cost = np.array(m["per_image"]["answered_by"]), np.array(m["per_image"]["cost"])
    assert 0 < who.mean() < 0.5 and m["to_big"] == pytest.approx(who.mean(), abs=1e-6)
    # an image the little model answers costs it alone (plus the policy); one sent on costs both
    assert cost[who == 0].max() < c["little"] * 1.5 < c["big"] < cost[who == 1].min()
    assert m["mean_cost"] == pytest.approx(cost.mean())
    curve = m4.doc["calibration"]["curve"]
    assert curve[0]["to_big"] == 0 and curve[0]["accuracy"] == m4.doc["calibration"]["little_only"]["accuracy"]
    assert all(r["expected_cost"] == pytest.approx(c["little"] + r["to_big"] * c["big"]) for r in curve)
    page = (m4.path / "report.html").read_text()
    assert 'id="cascade-curve"' in page and 'data-mark="little alone"' in page and 'data-mark="big alone"' in page


def test_the_firmware_computes_the_policy_score_python_does_and_runs_each_model_alone(m4):
    x = np.load(m4.path / "reference_inputs.npy")
    r = QemuCascadeRunner(m4.path / "firmware" / "firmware.elf", "mps2-an386", m4.little.manifest["io"])
    run = r.run_many(x)
    little_logits = np.concatenate([m4.little.runner().run([x[i:i + 1]])[0] for i in range(len(x))])
    ran_little = run.who == 0
    assert np.allclose(run.scores, score(little_logits, "score-margin"), atol=2e-6)
    assert np.array_equal(run.who, np.load(m4.path / "reference_answered_by.npy"))
    alone = r.run_many(x, mode="big")
    assert alone.who.all() and np.allclose(alone.outputs[~ran_little], run.outputs[~ran_little])
    assert np.allclose(r.run_many(x, mode="little").outputs[ran_little], run.outputs[ran_little])


def test_a_given_threshold_max_prob_and_a_calibration_folder(tmp_path):
    from edgecc.models.digits_pair import calibration_split

    x, y = calibration_split()
    cal = tmp_path / "cal"
    cal.mkdir()
    np.save(cal / "x.npy", x[:120])
    np.save(cal / "y.npy", y[:120])
    c = edgecc.cascade("digits-little", "digits-big", target="cortex-m4", policy="max-prob", threshold=0.9,
                       calibration=str(cal), output=tmp_path / "fixed")
    d = c.doc
    assert d["threshold"]["value"] == 0.9 and d["threshold"]["how"] == "given (--threshold)"
    assert d["calibration"]["samples"] == 120 and d["calibration"]["given"] == "--calibration"
    assert "#define EDGECC_CASCADE_POLICY EDGECC_CASCADE_MAX_PROB" in (c.path / "firmware" / "cascade_config.h"
                                                                       ).read_text()
    assert d["validation"]["status"] == "passed" and d["validation"]["branches"] == ["big", "little"]
    assert d["measured"]["status"].startswith("not run: ") and "no held-out test split" in d["measured"]["status"]


def test_a_changed_firmware_file_fails_verification(m4, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(m4.path, copy)
    with open(copy / "firmware" / "firmware.bin", "r+b") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="firmware/firmware.bin is missing or does not match cascade.json"):
        CascadeBundle.load(copy)


def _refused(capsys, args, code, *needles, out):
    assert main(["cascade", *map(str, args), "-o", str(out)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgecc: error: "), err
    for n in needles:
        assert n in err[0], (n, err[0])
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


@pytest.mark.parametrize("pair, code, needles", [
    (["digits-little", "resnet8"], 4, ["input shapes differ: digits-little takes 1x1x8x8 float32, resnet8 "
                                       "1x3x32x32 float32"]),
    (["digits-little", TINY], 4, ["class counts differ: digits-little answers over 10 classes", "over 5"]),
    ([TINY, TINY], 2, ["a cascade needs calibration data", "--calibration DATASET"]),
])
def test_pairs_that_cannot_cascade_are_refused(capsys, tmp_path, pair, code, needles):
    _refused(capsys, pair, code, *needles, out=tmp_path / "build" / "c")


@pytest.mark.parametrize("extra, needles", [
    (["--threshold", "1.5"], ["--threshold 1.5: out of range", "[0, 1]"]),
    (["--max-accuracy-drop", "-2"], ["--max-accuracy-drop -2.0"]),
    (["--calibration", "nowhere"], ["--calibration nowhere: not a dataset"]),
])
def test_bad_options_are_refused(capsys, tmp_path, extra, needles):
    _refused(capsys, ["digits-little", "digits-big", *extra], 2, *needles, out=tmp_path / "build" / "c")


def test_host_iree_cascade_validates_and_its_device_scripts_apply_the_policy(tmp_path):
    c = edgecc.cascade("digits-little", "digits-big", target="host", backend="iree", output=tmp_path / "host")
    v, m = c.doc["validation"], c.doc["measured"]
    assert v["status"] == "passed" and v["branches"] == ["big", "little"] and v["ran_on"] == "host"
    assert m["samples"] == 360 and m["unit"] == "ms" and m["agreement_with_pytorch_cascade"] == 1.0
    assert m["drop_vs_big_points"] <= 0.5
    assert json.loads((c.path / "cascade.json").read_text())["deploy"]["scripts"] == ["run.sh", "bench.sh",
                                                                                      "cascade_policy.py"]
    x, who = np.load(c.path / "reference_inputs.npy"), np.load(c.path / "reference_answered_by.npy")
    ref = np.load(c.path / "reference_outputs.npy")
    for i in (int(np.argmin(who)), int(np.argmax(who))):
        np.save(tmp_path / "in.npy", x[i:i + 1])
        # as on a device with iree-base-runtime installed: its iree-run-module (this venv's) on PATH
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        r = subprocess.run([str(c.path / "run.sh"), str(tmp_path / f"o{i}"), str(tmp_path / "in.npy")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert f"answered by {('little', 'big')[who[i]]}" in r.stdout
        assert np.abs(np.load(tmp_path / f"o{i}" / "output_0.npy") - ref[i]).max() < 1e-4


@pytest.mark.slow
def test_a_board_qemu_cannot_run_gets_its_firmware_and_is_measured_on_the_same_objects(tmp_path):
    c = edgecc.cascade("digits-little", "digits-big", target="cortex-m4", board="NUCLEO-L4R5ZI",
                       output=tmp_path / "nucleo")
    d = c.doc
    assert d["memory"]["board"] == "NUCLEO-L4R5ZI" and d["deploy"]["qemu"] is None
    assert "firmware/firmware.hex" in d["deploy"]["flash_command"]
    assert "ORIGIN = 0x08000000" in (c.path / "firmware" / "firmware.ld").read_text()
    assert d["validation"]["status"] == "passed"
    assert d["measured"]["ran_on"].endswith("(the NUCLEO-L4R5ZI firmware's objects, linked for mps2-an386)")
    assert d["measured"]["drop_vs_big_points"] <= 0.5 and d["measured"]["saving_vs_big_measured"] >= 0.5
