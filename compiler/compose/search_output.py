"""What `edgecc search` writes: search.json, report.html and the chosen model(s) as file.py:build factories with
their weights beside them (.npz, no pickle)."""

from __future__ import annotations

import inspect
import json
from datetime import date
from pathlib import Path

import numpy as np

from edgecc.bundle import check_replaceable, staging

SEARCH_JSON = "search.json"


def check_replaceable_search(out: Path, force: bool) -> None:
    """A search may replace an empty folder or a folder it wrote (search.json); else as compile."""
    if not force and out.is_dir() and not out.is_symlink() and (out / SEARCH_JSON).is_file():
        return
    check_replaceable(out, force)


def factory_source(row: dict, doc: dict, role: str = "") -> str:
    """A standalone file.py:build (torch + numpy) that rebuilds the candidate and loads its weights."""
    from edgecc.compiler.compose.search_space import SearchNet

    stem = role or "chosen"
    what = f"the {role} model of the pair" if role else "the chosen model"
    return "\n".join([
        f'"""{row["name"]}: {what} of `edgecc search` on {date.today().isoformat()} (target {doc["target"]}, '
        f'budget {doc["budget"]["source"]}).',
        "",
        f"Measured: top-1 {row['val_accuracy']:.2%} on digits' calibration split, {row['test_accuracy']:.2%} on the "
        f"test split; {row['instructions']:,} QEMU instructions per inference; RAM {row['ram_bytes']:,} B, flash "
        f"{row['flash_bytes']:,} B (from the ELF).",
        "",
        f"    edgecc compile {stem}.py:build --target {doc['target']}",
        f'Weights: {stem}.npz beside this file (plain arrays, loaded with allow_pickle=False)."""',
        "", "from pathlib import Path", "", "import numpy as np", "import torch", "from torch import nn", "", "",
        inspect.getsource(SearchNet).rstrip(), "", "",
        "def build():",
        f"    net = SearchNet({row['width']}, {row['depth']}, {row['kernel']}, {row['resolution']})",
        "    with np.load(Path(__file__).with_suffix(\".npz\"), allow_pickle=False) as f:",
        "        weights = {k: torch.from_numpy(f[k]) for k in f.files if k != \"example_input\"}",
        "        example = torch.from_numpy(f[\"example_input\"])",
        "    net.load_state_dict(weights)",
        "    return net.eval(), (example,)", ""])


def _save_model(folder: Path, stem: str, row: dict, doc: dict, epochs: int, role: str = "") -> None:
    from edgecc.compiler.compose.search_space import Candidate, train_candidate
    from edgecc.models.datasets import get_dataset

    net = train_candidate(Candidate(row["width"], row["depth"], row["kernel"], row["resolution"]), epochs)
    arrays = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    arrays["example_input"] = get_dataset("digits").x_test[:1].copy()
    np.savez(folder / f"{stem}.npz", **arrays)
    (folder / f"{stem}.py").write_text(factory_source(row, doc, role))


def write(out: Path, doc: dict, rows: dict, epochs: int, note) -> None:
    from edgecc.runtime.report_search import search_report_html

    doc["date"] = date.today().isoformat()
    with staging(out, force=True, note=note) as tmp:
        if "cascade" in doc:
            pair = doc["cascade"]["chosen"]
            _save_model(tmp, "little", rows[pair["little"]], doc, epochs, "little")
            _save_model(tmp, "big", rows[pair["big"]], doc, epochs, "big")
            doc["files"] = ["little.py", "little.npz", "big.py", "big.npz"]
        else:
            _save_model(tmp, "chosen", rows[doc["chosen"]["name"]], doc, epochs)
            doc["files"] = ["chosen.py", "chosen.npz"]
        (tmp / SEARCH_JSON).write_text(json.dumps(doc, indent=1) + "\n")
        (tmp / "report.html").write_text(search_report_html(doc))
