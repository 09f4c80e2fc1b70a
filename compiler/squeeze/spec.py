"""The squeeze pipeline as the user writes it: `--squeeze prune=0.5,lowrank=0.9,distill,int8` or a TOML file.

CLI form: stages separated by commas, in order; `STAGE=VALUE` sets the stage's main option (prune: ratio, lowrank:
energy), `:KEY=VALUE` any other, e.g. `prune=0.5:importance=taylor,distill:epochs=20,int8`.

TOML form (`--squeeze pipeline.toml`), a `[squeeze]` section:

    [squeeze]
    stages = ["prune", "distill", "int8"]
    data = "digits"                        # or a folder of .npy inputs (--squeeze-data overrides it)
    [squeeze.prune]
    ratio = 0.5
    importance = "magnitude"
    layers = { "features.0" = 0.25 }       # per-layer ratios
    round_to = 8                           # keep channel counts multiples of 8 (SIMD widths)
    [squeeze.distill]
    epochs = 30

`check_pipeline` refuses what cannot work before any model is loaded: an unknown stage or option, a value out of
range, a stage given twice, int8 anywhere but last, distill with nothing pruned or factorized before it, and a stage
that needs data (distill, int8, Taylor importance) without any.

    >>> [(s.name, s.options) for s in parse_squeeze("prune=0.5:importance=taylor,distill,int8")]
    [('prune', {'ratio': 0.5, 'importance': 'taylor'}), ('distill', {}), ('int8', {})]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import ModelError, UsageError

# stage -> (its main option, the options it takes with their defaults)
STAGES = {
    "prune": ("ratio", {"ratio": 0.5, "importance": "magnitude", "layers": {}, "round_to": 1}),
    "lowrank": ("energy", {"energy": 0.9}),
    "distill": (None, {"epochs": 30, "lr": 2e-3, "batch": 64, "temperature": 4.0, "alpha": 0.5, "seed": 0}),
    "int8": (None, {}),
}
NEEDS_DATA = {"distill": "distill trains on it", "int8": "int8 is calibrated on it"}
TOML_KEYS = ("stages", "data", *STAGES)


@dataclass(frozen=True)
class StageSpec:
    name: str
    options: dict = field(default_factory=dict)

    def get(self, key: str):
        return self.options.get(key, STAGES[self.name][1][key])


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _stage(name: str, options: dict, where: str) -> StageSpec:
    if name not in STAGES:
        raise UsageError(f"unknown squeeze stage {name!r}{where}; stages: {', '.join(STAGES)}")
    valid = STAGES[name][1]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UsageError(f"unknown {name} option(s) {', '.join(unknown)}{where}; valid: "
                         f"{', '.join(valid) or 'none'}")
    return StageSpec(name, dict(options))


def parse_squeeze(text: str) -> list[StageSpec]:
    """The stages of a `--squeeze` value (the CLI form above); UsageError in one line when it is malformed."""
    stages = []
    for part in [p.strip() for p in str(text).split(",")]:
        if not part:
            raise UsageError(f"empty stage in --squeeze {text!r}; write it like prune=0.5,distill,int8")
        head, *extra = part.split(":")
        name, sep, value = head.partition("=")
        options = {}
        if sep:
            main = STAGES.get(name.strip(), (None, {}))[0]
            if main is None and name.strip() in STAGES:
                raise UsageError(f"squeeze stage {name.strip()} takes no value ({part!r}); write {name.strip()} "
                                 "or give options as :KEY=VALUE")
            options[main or "value"] = _value(value.strip())
        for kv in extra:
            k, sep, v = kv.partition("=")
            if not sep or not k.strip():
                raise UsageError(f"bad squeeze option {kv!r} in {part!r}; write it as :KEY=VALUE")
            options[k.strip()] = _value(v.strip())
        stages.append(_stage(name.strip(), options, f" in --squeeze {text!r}"))
    return stages


def load_squeeze_toml(path: Path) -> tuple[list[StageSpec], str]:
    """(stages, data) of a TOML pipeline file's [squeeze] section."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read squeeze pipeline {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"squeeze pipeline {path} is not valid TOML: {e}") from None
    sq = doc.get("squeeze")
    if not isinstance(sq, dict):
        raise UsageError(f"squeeze pipeline {path} has no [squeeze] section")
    unknown = sorted(set(sq) - set(TOML_KEYS))
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(unknown)} in [squeeze] of {path}; valid: {', '.join(TOML_KEYS)}")
    names = sq.get("stages")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError(f"[squeeze] stages in {path} must be a list of stage names, e.g. [\"prune\", \"int8\"]")
    stages = []
    for n in names:
        opts = sq.get(n, {}) if n in STAGES else {}
        if not isinstance(opts, dict):
            raise UsageError(f"[squeeze.{n}] in {path} must be a table of options")
        stages.append(_stage(n, opts, f" in {path}"))
    data = sq.get("data", "")
    if not isinstance(data, str):
        raise UsageError(f"[squeeze] data in {path} must be a dataset name or a folder")
    return stages, data


def resolve_squeeze(squeeze, data: str = "") -> tuple[list[StageSpec], str]:
    """(stages, data) from a --squeeze value (CLI form, a .toml path, or a list of StageSpec), checked."""
    file_data = ""
    if isinstance(squeeze, (list, tuple)):
        stages = list(squeeze)
    elif str(squeeze).endswith(".toml"):
        stages, file_data = load_squeeze_toml(Path(squeeze))
    else:
        stages = parse_squeeze(squeeze)
    data = data or file_data
    check_pipeline(stages, data)
    return stages, data


def _in_range(stage: StageSpec, key: str, low: float, high: float, example: str) -> None:
    v = stage.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not low < v < high:
        raise UsageError(f"{stage.name} {key}={v!r} is out of range: it must be between {low:g} and {high:g} "
                         f"(exclusive), e.g. {example}")


def check_pipeline(stages: list[StageSpec], data: str) -> None:
    """UsageError / ModelError for a pipeline that cannot work (see the module docstring)."""
    if not stages:
        raise UsageError("--squeeze has no stages; give e.g. prune=0.5,distill,int8")
    names = [s.name for s in stages]
    for s in stages:
        if names.count(s.name) > 1:
            raise UsageError(f"squeeze stage {s.name} is given {names.count(s.name)} times; give it once")
    if "int8" in names and names[-1] != "int8":
        raise UsageError(f"int8 must be the last squeeze stage (got {','.join(names)}): the backends compile its "
                         "quantized graph and no fp32 stage can follow it")
    if "distill" in names and not {"prune", "lowrank"} & set(names[:names.index("distill")]):
        raise UsageError(f"distill fine-tunes a pruned or factorized model: put it after prune or lowrank (got "
                         f"{','.join(names)})")
    for s in stages:
        if s.name == "prune":
            from edgecc.compiler.squeeze.prune import check_prune_options

            layers = s.get("layers")
            if not isinstance(layers, dict):
                raise UsageError("prune layers must be a table of layer = ratio (TOML form)")
            _in_range(s, "ratio", 0, 1, "prune=0.5")
            r = s.get("round_to")
            if not isinstance(r, int) or isinstance(r, bool) or r < 1:
                raise UsageError(f"prune round_to={r!r}: give a whole number of channels, 1 or more (e.g. 8)")
            check_prune_options(s.get("ratio"), layers, s.get("importance"))
        elif s.name == "lowrank":
            _in_range(s, "energy", 0, 1, "lowrank=0.9")
        elif s.name == "distill":
            from edgecc.compiler.squeeze.distill import DistillOptions

            DistillOptions.from_dict(s.options)
    needs = [(s.name, NEEDS_DATA[s.name]) for s in stages if s.name in NEEDS_DATA]
    needs += [("prune", "Taylor importance needs gradients on it") for s in stages
              if s.name == "prune" and s.get("importance") == "taylor"]
    if needs and not data:
        name, why = needs[0]
        raise ModelError(f"squeeze stage {name} needs data ({why}): pass --squeeze-data DATASET (digits) or DIR "
                         "(a folder of .npy inputs; no labels needed)")
