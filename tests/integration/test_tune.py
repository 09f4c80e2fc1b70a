"""`edgecc tune`: real MetaSchedule tuning (local builder and runner) into a database that `edgecc compile`
applies; numerics still checked against PyTorch."""

import json

import pytest

from tests.conftest import DATA, edgecc_cli

TINY = f"{DATA / 'tiny_factory.py'}:build"


@pytest.mark.slow  # ~160 s of MetaSchedule workers; test_tune_rpc.py covers tune -> compile in make test
def test_tune_then_compile_applies_records(tmp_path):
    db = tmp_path / "db"
    p = edgecc_cli("tune", TINY, "--target", "host", "--trials", "4", "--database", db, timeout=900)
    assert p.returncode == 0, p.stderr
    assert "0 -> " in p.stdout and (db / "database_tuning_record.json").stat().st_size > 0
    records = [json.loads(line) for line in (db / "database_tuning_record.json").read_text().splitlines()]
    assert records and all(r[1] for r in records)  # each record carries its trace

    out = tmp_path / "tuned"
    p = edgecc_cli("compile", TINY, "--target", "host", "--backend", "tvm", "--option", f"tuning_db={db}",
                   "-o", out)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "manifest.json").read_text())
    info = m["artifact"]["info"]
    assert info["tuning_database"] == str(db) and info["tuned_functions"] >= 1
    assert m["validation"]["passed"]


@pytest.mark.slow  # two MetaSchedule runs (~4 min here)
def test_a_killed_tune_resumes_with_the_trials_left(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    db, work = tmp_path / "db", tmp_path / "work"
    args = [sys.executable, "-m", "edgecc", "tune", TINY, "--target", "host", "--trials", "6", "--database", db,
            "--work-dir", work]
    p = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    records = work / "database_tuning_record.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and p.poll() is None and not (
            records.exists() and records.read_text().count("\n") >= 2):
        time.sleep(0.5)
    assert p.poll() is None, p.communicate()  # still tuning: stop it the hard way, workers and all
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    measured = records.read_text().count("\n")
    assert not db.exists() and 2 <= measured < 6

    r = edgecc_cli(*args[3:], timeout=1800)
    assert r.returncode == 0, r.stderr
    assert f"resumed: {measured} of 6 trials" in r.stdout
    assert (db / "database_tuning_record.json").stat().st_size > 0 and not work.exists()


def test_tune_refuses_targets_that_do_not_run_here(tmp_path):
    p = edgecc_cli("tune", TINY, "--target", "orangepi5-cpu", "--database", tmp_path / "db")
    assert p.returncode == 3 and "does not run here" in p.stderr and not (tmp_path / "db").exists()


def test_database_keeps_the_fastest_record_per_workload(tmp_path):
    from edgecc.compiler.backends.tvm.tuning import _keep_best

    f = tmp_path / "database_tuning_record.json"
    rec = lambda w, secs: json.dumps([w, [[["trace"], []], secs, {"kind": "llvm"}, []]])  # noqa: E731
    f.write_text("\n".join([rec(0, [3e-6, 3e-6]), rec(1, [9e-6]), rec(0, [1e-6, 2e-6]), rec(1, None)]) + "\n")
    assert _keep_best(f) == 2
    kept = [json.loads(line) for line in f.read_text().splitlines()]
    assert [(w, r[1]) for w, r in kept] == [(0, [1e-6, 2e-6]), (1, [9e-6])]


def test_tune_refuses_a_non_positive_trial_count(tmp_path):
    p = edgecc_cli("tune", TINY, "--trials", "0", "--database", tmp_path / "db")
    assert p.returncode == 2 and "--trials: must be 1 or more, got 0" in p.stderr and not (tmp_path / "db").exists()
