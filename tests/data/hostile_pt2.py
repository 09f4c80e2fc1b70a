"""Crafted .pt2 archives whose loading with plain `torch.export.load` would run a command (touch a marker file):
one through pickled sample inputs, one through a weight saved with use_pickle. Used by test_hostile_input.py."""

import json
import os
import pickle
import zipfile
from pathlib import Path


class _Touch:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def make_pt2(path: Path, marker: Path, via: str) -> Path:
    """A valid ExportedProgram of a tiny Linear, then one part replaced by a code-running pickle.
    via: "sample_inputs" or "weights"."""
    import torch

    path = Path(path)
    clean = path.with_name(path.stem + ".clean.pt2")
    ep = torch.export.export(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval(), (torch.randn(1, 4),))
    torch.export.save(ep, clean)
    evil = pickle.dumps(_Touch(marker))
    with zipfile.ZipFile(clean) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if via == "sample_inputs" and name.endswith("data/sample_inputs/model.pt"):
                data = evil
            elif via == "weights" and name.endswith("weights/model_weights_config.json"):
                cfg = json.loads(data)
                first = next(iter(cfg["config"].values()))
                first["use_pickle"] = True
                weight_file = first["path_name"]
                data = json.dumps(cfg).encode()
            zout.writestr(name, data)
        if via == "weights":  # rewrite the weight the config now says is pickled
            pass
    if via == "weights":
        _replace(path, f"data/weights/{weight_file}", evil)
    clean.unlink()
    return path


def _replace(archive: Path, suffix: str, data: bytes) -> None:
    tmp = archive.with_suffix(".tmp")
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, data if name.endswith(suffix) else zin.read(name))
    tmp.replace(archive)
