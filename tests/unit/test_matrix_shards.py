"""`edgecc build --shard K/N`: the partition of the repository's own matrix (edgecc.toml, every cell planned, none
compiled), and `build merge` refusing summaries that do not belong together."""

import json
import re
import tomllib

import pytest

from edgecc.compiler.matrix import plan_cells
from edgecc.compiler.matrix_shards import (
    Shard,
    cell_costs,
    merge_summaries,
    parse_shard,
    partition,
    plan_digest,
    shard_meta,
)
from edgecc.errors import ReportError, UsageError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def repo_matrix():
    cfg = tomllib.loads((REPO / "edgecc.toml").read_text())
    return plan_cells(cfg["models"], cfg["targets"], cfg["backends"])


@pytest.fixture(scope="module")
def size_costs(repo_matrix):
    return cell_costs(repo_matrix)


def _check_partition(cells, parts, costs):
    names = [c.name for c in cells]
    assert sorted(c.name for p in parts for c in p) == sorted(names)  # every cell in exactly one shard
    for p in parts:
        assert [c.name for c in p] == [n for n in names if n in {c.name for c in p}]  # each in plan order
    loads = [sum(costs[c.name] for c in p) for p in parts]
    # greedy LPT: no shard is heavier than the lightest by more than one cell
    assert max(loads) - min(loads) <= max(costs.values())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_repository_matrix_partition_by_model_size(repo_matrix, size_costs, n):
    assert len(repo_matrix) == 70
    parts = partition(repo_matrix, n, size_costs)
    _check_partition(repo_matrix, parts, size_costs)
    if n == 3:  # deterministic: planned and costed afresh, the same shards
        again = partition(plan_cells(*_cfg()), n, cell_costs(plan_cells(*_cfg())))
        assert [[c.name for c in p] for p in parts] == [[c.name for c in p] for p in again]
        # resnet18's cells are the heaviest: they are spread, not piled on one shard
        heavy = [sum(c.model == "resnet18" and c.status == "pending" for c in p) for p in parts]
        assert max(heavy) - min(heavy) <= 1, heavy


def test_partition_by_previous_seconds(repo_matrix, tmp_path):
    # a previous summary: seconds that have nothing to do with model size (cell index mod 7, + 1)
    cells = [{"model": c.model, "target": c.target, "backend": c.backend, "status": "ok", "compile_seconds": 1.0,
              "extra": {"wall_seconds": float(i % 7 + 1)}} for i, c in enumerate(repo_matrix) if i != 5]
    prev = tmp_path / "summary.json"
    prev.write_text(json.dumps({"cells": cells}))
    costs = cell_costs(repo_matrix, str(prev))
    refused = [c.name for c in repo_matrix if c.status == "refused"]
    assert refused and all(costs[n] == 0 for n in refused)
    pending = [c for c in repo_matrix if c.status == "pending"]
    assert costs[pending[0].name] == float(repo_matrix.index(pending[0]) % 7 + 1)
    assert costs[repo_matrix[5].name] in (0, 4.0)  # absent from the summary: the median (4 s), or refused
    for n in (2, 3, 5):
        parts = partition(repo_matrix, n, costs)
        _check_partition(repo_matrix, parts, costs)
        loads = [sum(costs[c.name] for c in p) for p in parts]
        assert max(loads) / min(loads) < 1.1, loads  # balanced in seconds


def test_parse_shard():
    assert parse_shard("3/4") == Shard(3, 4) and str(parse_shard(" 1/1 ")) == "1/1"
    for text, why in [("0/4", "K must be from 1 to 4"), ("5/4", "K must be from 1 to 4"),
                      ("a/b", "write it as K/N"), ("1/0", "N (the number of shards) must be 1 or more"),
                      ("2", "write it as K/N"), ("-1/3", "write it as K/N")]:
        with pytest.raises(UsageError, match=re.escape(why)):
            parse_shard(text)


def _cfg():
    cfg = tomllib.loads((REPO / "edgecc.toml").read_text())
    return cfg["models"], cfg["targets"], cfg["backends"]


def _shard_summaries(tmp_path, cells, n=3, costs_from=None):
    parts = partition(cells, n, {c.name: 1.0 for c in cells})
    paths = []
    for k, part in enumerate(parts, 1):
        s = {"schema_version": 1, "wall_seconds": 1.0, "jobs": 1, "counts": {},
             "cells": [{"model": c.model, "target": c.target, "backend": c.backend, "status": "ok",
                        "reason": "", "checked": "", "extra": {}} for c in part],
             **shard_meta(cells, Shard(k, n), costs_from)}
        paths.append(tmp_path / f"s{k}.json")
        paths[-1].write_text(json.dumps(s))
    return paths


def test_merge_checks_the_shards_belong_together(repo_matrix, tmp_path):
    paths = _shard_summaries(tmp_path, repo_matrix)
    merged, missing = merge_summaries([str(p) for p in reversed(paths)])
    assert not missing and [f"{c['model']}-{c['target']}-{c['backend']}" for c in merged["cells"]] == \
        [c.name for c in repo_matrix]
    assert [s["index"] for s in merged["shards"]] == [1, 2, 3]
    _, missing = merge_summaries([str(paths[0]), str(paths[2])])
    assert missing and len(missing) == len(json.loads(paths[1].read_text())["cells"])
    # another config: one model fewer
    (tmp_path / "other").mkdir()
    other = _shard_summaries(tmp_path / "other", repo_matrix[:-2])
    with pytest.raises(ReportError, match="shards of different matrices"):
        merge_summaries([str(paths[0]), str(other[1]), str(paths[2])])
    with pytest.raises(ReportError, match="both shard 1/3"):
        merge_summaries([str(paths[0]), str(paths[0])])
    assert plan_digest(repo_matrix) != plan_digest(repo_matrix[:-2])
    (tmp_path / "plain.json").write_text(json.dumps({"cells": []}))
    with pytest.raises(ReportError, match="not a shard summary"):
        merge_summaries([str(tmp_path / "plain.json")])
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ReportError, match="not a build summary"):
        merge_summaries([str(tmp_path / "junk.json")])
