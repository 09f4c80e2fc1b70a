"""`edgecc search`'s pieces that need no toolchain: budgets, the candidate family, Pareto fronts, the results file
(resume and a line cut short), pair RAM/flash, and the refusal when nothing fits."""

import json

import numpy as np
import pytest

from edgecc.compiler.compose.search import (
    Budget,
    choose_pair,
    nothing_fits,
    pair_search,
    pareto,
    parse_bytes,
    plan_budget,
    read_results,
)
from edgecc.compiler.compose.search_space import SPACES, Candidate, parse_space
from edgecc.errors import BudgetError, TargetError, UsageError
from edgecc.targets import get_target

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("text, n", [("520KB", 520 * 1024), ("1MB", 1 << 20), ("640k", 640 * 1024),
                                     ("65536", 65536), ("1.5 MiB", 3 << 19)])
def test_sizes(text, n):
    assert parse_bytes(text, "ram") == n


@pytest.mark.parametrize("text", ["", "0KB", "5x", "-1MB", "KB"])
def test_bad_sizes_are_one_line_usage_errors(text):
    with pytest.raises(UsageError, match="--ram"):
        parse_bytes(text, "ram")


def test_budgets_from_a_board_or_sizes():
    m4 = get_target("cortex-m4")
    b = plan_budget(m4, "NUCLEO-L4R5ZI", "", "")
    assert (b.ram_bytes, b.flash_bytes, b.source) == (640 * 1024, 2048 * 1024, "board NUCLEO-L4R5ZI")
    b = plan_budget(m4, "", "520KB", "1MB")
    assert (b.ram_bytes, b.flash_bytes) == (520 * 1024, 1 << 20) and b.fits(520 * 1024, 1 << 20)
    assert not b.fits(520 * 1024 + 1, 10)
    assert plan_budget(m4, "", "64KB", "").flash_bytes == 4096 * 1024  # the QEMU board's flash
    with pytest.raises(UsageError, match="not both"):
        plan_budget(m4, "NUCLEO-L4R5ZI", "520KB", "")
    with pytest.raises(UsageError, match="needs a budget"):
        plan_budget(m4, "", "", "")
    with pytest.raises(TargetError, match="NUCLEO-X"):
        plan_budget(m4, "NUCLEO-X", "", "")


def test_every_candidate_of_the_spaces_builds_and_classifies_an_8x8_digit():
    assert len(SPACES["small"]) == 8 and len(SPACES["full"]) == 30
    for c in parse_space("full"):
        net = c.build()
        assert net(torch.zeros(1, 1, 8, 8)).shape == (1, 10), c.name
    c = Candidate.parse("w8-d2-k5-r4")
    assert (c.width, c.depth, c.kernel, c.resolution, c.name) == (8, 2, 5, 4, "w8-d2-k5-r4")
    assert [x.name for x in parse_space("w4-d1-k3-r8, w4-d1-k3-r8,w8-d1-k3-r4")] == ["w4-d1-k3-r8", "w8-d1-k3-r4"]


@pytest.mark.parametrize("name", ["w8-d2-k4-r8", "w8-d4-k3-r8", "w8-d1-k3-r6", "w0-d1-k3-r8", "wide"])
def test_bad_candidates_are_refused(name):
    with pytest.raises(UsageError, match="candidate"):
        parse_space(name)


def _row(name, acc, instr, ram, flash=10_000, arena=1_000):
    return {"name": name, "status": "ok", "val_accuracy": acc, "instructions": instr, "ram_bytes": ram,
            "flash_bytes": flash, "arena_bytes": arena}


def test_pareto_front_keeps_what_nothing_beats():
    rows = [_row("a", 0.90, 10, 5), _row("b", 0.95, 20, 9), _row("c", 0.93, 30, 4), _row("d", 0.97, 40, 8),
            _row("e", 0.96, 50, 3)]
    assert pareto(rows, "instructions") == ["a", "b", "d"]  # c and e: b or d is as accurate and cheaper
    assert pareto(rows, "ram_bytes") == ["e", "d"]


def test_nothing_fits_says_what_the_smallest_needs():
    rows = [_row("big", 0.9, 10, 50_000, 90_000), _row("small", 0.8, 5, 9_200, 8_600),
            {"name": "x", "status": "does not fit mps2-an386: ..."}]
    e = nothing_fits(rows, Budget(4096, 1 << 20, "--ram/--flash"), get_target("cortex-m4"))
    assert isinstance(e, BudgetError)
    assert str(e) == ("no candidate fits --ram/--flash (RAM 4 KB, flash 1024 KB): the smallest, small, needs 9 KB "
                      "RAM and 9 KB flash")


def test_results_file_resumes_and_ignores_a_line_cut_short(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(_row("a", 0.9, 1, 1)) + "\n" + json.dumps(_row("b", 0.8, 2, 2))[:25])
    assert list(read_results(f)) == ["a"]
    assert read_results(tmp_path / "missing.jsonl") == {}


def test_pairs_share_one_arena_sum_flash_and_pick_the_cheapest_that_reaches_the_target():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 100)
    good = np.eye(10)[y] * 9.0
    little = good.copy()
    little[:10] = np.eye(10)[(y[:10] + 1) % 10] * 0.5  # wrong and unsure on 10
    rows = [{**_row("l", 0.9, 100, 9_000, 10_000, 1_000), "cal_logits": little.tolist()},
            {**_row("b", 1.0, 1_000, 12_000, 30_000, 4_000), "cal_logits": good.tolist()}]
    (p,) = pair_search(rows, Budget(20_000, 100_000, "t"), 0.5, y)
    assert (p["little"], p["big"], p["ram_bytes"], p["flash_bytes"]) == ("l", "b", 4_000 + 8_000, 40_000)
    assert p["to_big"] == pytest.approx(0.1) and p["val_accuracy"] == 1.0
    assert p["expected_instructions"] == pytest.approx(100 + 0.1 * 1_000) and p["fits"]
    assert choose_pair([p], 1.0) == p and choose_pair([{**p, "fits": False}], 0.5) is None
