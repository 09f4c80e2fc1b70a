"""`edgecc search` for real: candidates trained, compiled with the micro backend, run in QEMU, saved to the results
file as measured (a rerun resumes, a cut-short file is finished); the chosen model compiles from its .py:build file
and fits; --cascade picks a pair; a budget nothing meets is refused in one line with nothing written."""

import json

import pytest

import edgecc
from edgecc.compiler.cli import main
from edgecc.compiler.compose.search import search
from tests.conftest import require_cortex_m_tools

pytest.importorskip("torch")
pytest.importorskip("tvm")
require_cortex_m_tools()

TWO = "w4-d1-k3-r4,w4-d1-k3-r8"


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    logs = []
    out, doc = search(ram="64KB", flash="1MB", space=TWO, output=root / "out", results=root / "r.jsonl",
                      log=logs.append)
    return root, out, doc, logs


def test_each_candidate_is_measured_and_saved_as_it_goes(two):
    root, out, doc, logs = two
    rows = [json.loads(line) for line in (root / "r.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == TWO.split(",")
    for r in rows:
        assert r["status"] == "ok" and r["instructions"] > 0 and 0.5 < r["val_accuracy"] <= 1
        assert 0 < r["arena_bytes"] < r["ram_bytes"] and r["flash_bytes"] > 0 and len(r["cal_logits"]) == 288
    small, full = rows
    assert small["instructions"] < full["instructions"]  # the 4x4 input pays for a quarter of the convolution
    assert [ln.split(":")[0] for ln in logs[1:]] == ["[1/2] w4-d1-k3-r4", "[2/2] w4-d1-k3-r8"]
    assert all(ln.endswith("(measured)") for ln in logs[1:])
    assert doc["chosen"]["name"] == "w4-d1-k3-r8" and doc["front_instructions"] == ["w4-d1-k3-r4", "w4-d1-k3-r8"]
    page = (out / "report.html").read_text()
    assert 'id="search-instructions"' in page and 'id="search-ram"' in page and "w4-d1-k3-r8 (chosen)" in page


def test_the_chosen_model_compiles_from_its_factory_file_and_fits(two):
    _, out, doc, _ = two
    b = edgecc.compile(f"{out / 'chosen.py'}:build", target="cortex-m4", output=out.parent / "chosen-m4")
    mem = b.manifest["artifact"]["info"]["memory"]
    assert b.manifest["validation"]["status"] == "passed"
    assert mem["ram_bytes"] == doc["chosen"]["ram_bytes"] <= doc["budget"]["ram_bytes"]
    # the same code; only the model's name string in the firmware differs (search-w4-... vs chosen)
    assert abs(mem["flash_bytes"] - doc["chosen"]["flash_bytes"]) < 64 < doc["budget"]["flash_bytes"] - mem[
        "flash_bytes"]


def test_a_rerun_resumes_and_a_cut_short_results_file_is_finished(two, tmp_path):
    root, _, doc, _ = two
    logs = []
    _, again = search(ram="64KB", flash="1MB", space=TWO, output=tmp_path / "again", results=root / "r.jsonl",
                      log=logs.append)
    assert all(ln.endswith("(from the results file)") for ln in logs[1:])
    assert again["candidates"] == doc["candidates"]
    cut = tmp_path / "cut.jsonl"
    first, second = (root / "r.jsonl").read_text().splitlines()
    cut.write_text(first + "\n" + second[:40])  # killed while writing the second row
    logs = []
    _, resumed = search(ram="64KB", flash="1MB", space=TWO, output=tmp_path / "resumed", results=cut,
                        log=logs.append)
    assert logs[1].endswith("(from the results file)") and logs[2].endswith("(measured)")
    assert [c["instructions"] for c in resumed["candidates"]] == [c["instructions"] for c in doc["candidates"]]


def test_cascade_search_picks_a_pair_and_writes_both_factories(two, tmp_path):
    root, _, _, _ = two
    out, doc = search(ram="64KB", flash="1MB", space=TWO, output=tmp_path / "pair", results=root / "r.jsonl",
                      cascade=True, max_accuracy_drop=5.0)
    p = doc["cascade"]["chosen"]
    assert (p["little"], p["big"]) == ("w4-d1-k3-r4", "w4-d1-k3-r8") and p["fits"]
    rows = {c["name"]: c for c in doc["candidates"]}
    assert p["flash_bytes"] == rows["w4-d1-k3-r4"]["flash_bytes"] + rows["w4-d1-k3-r8"]["flash_bytes"]
    assert p["ram_bytes"] <= rows["w4-d1-k3-r4"]["ram_bytes"] + rows["w4-d1-k3-r8"]["ram_bytes"]
    assert {f.name for f in out.iterdir()} >= {"little.py", "little.npz", "big.py", "big.npz", "search.json"}


def test_a_budget_nothing_meets_is_refused_and_nothing_is_written(two, tmp_path, capsys):
    root, _, _, _ = two
    out = tmp_path / "none"
    rc = main(["search", "--ram", "4KB", "--space", TWO, "--results", str(root / "r.jsonl"), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 9 and len(err) == 1 and not out.exists()
    assert "no candidate fits --ram/--flash (RAM 4 KB" in err[0] and "the smallest, w4-d1-k3-r4, needs" in err[0]


@pytest.mark.slow
def test_search_for_the_nucleo_board_returns_a_front_whose_choice_compiles_for_it(tmp_path):
    out, doc = search(board="NUCLEO-L4R5ZI", output=tmp_path / "nucleo", results=tmp_path / "r.jsonl")
    assert len(doc["candidates"]) == 8 and len(doc["front_instructions"]) >= 2
    c = doc["chosen"]
    assert c["name"] in doc["front_instructions"] and c["fits"]
    b = edgecc.compile(f"{out / 'chosen.py'}:build", target="cortex-m4", board="NUCLEO-L4R5ZI",
                       output=tmp_path / "chosen")
    assert b.manifest["artifact"]["info"]["memory"]["ram_bytes"] <= 640 * 1024
