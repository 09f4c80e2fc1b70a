"""The bundle manifest as typed data: `Manifest.from_dict(json.load(f))` checks and reads it, `.to_dict()` gives back
the JSON it came from (schema version 1, the keys in the order edgecc writes them).

    m = Manifest.from_dict(json.loads(Path("build/b/manifest.json").read_text()), "build/b/manifest.json")
    m.validation.status is ValidationStatus.PASSED, m.artifact.memory.flash_bytes if m.artifact.memory else None

A section may carry keys this version does not name (a backend's `artifact.info`, a newer validation field): they
are kept in `extra` and written back, so a round trip never drops data. What makes a manifest unusable (a missing
section, a path that leaves the bundle, an entry or io file that is not hashed) is a BundleError naming it.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from edgecc.errors import BundleError

SCHEMA_VERSION = 1
_SAFE_PART = re.compile(r"[A-Za-z0-9_.+@=-]+")


class ValidationStatus(enum.Enum):
    PASSED = "passed"
    SKIPPED = "skipped"  # --no-validate
    NOT_RUN = "not run"  # the artifact cannot run here; `reason` says what it needs


def safe_relpath(rel, what: str, where) -> str:
    """`rel` as a manifest may name a file: relative, normalised, POSIX, inside the bundle. BundleError otherwise."""
    ok = isinstance(rel, str) and rel and "\\" not in rel and not rel.startswith("/")
    if ok:
        parts = PurePosixPath(rel).parts
        ok = PurePosixPath(*parts).as_posix() == rel and all(
            _SAFE_PART.fullmatch(p) and p not in (".", "..") for p in parts)
    if not ok:
        raise BundleError(f"{where}: {what} {rel!r} is not a plain relative path inside the bundle; the manifest "
                          "was edited or damaged, recompile the bundle")
    return rel


def _damaged(where, what: str) -> BundleError:
    return BundleError(f"{where}: {what}; the bundle is damaged, recompile it")


def _split(cls, d: dict) -> tuple[dict, dict]:
    """(the keys cls names, the rest) of a JSON section."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return {k: v for k, v in d.items() if k in names}, {k: v for k, v in d.items() if k not in names}


def _build(cls, d: dict):
    """cls from a JSON section: the keys it names as fields, the rest kept in `extra`."""
    known, rest = _split(cls, d)
    return cls(**known, extra=rest)


def _to_dict(obj, skip=()) -> dict:
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in ("extra", *skip)}
    return {**out, **obj.extra}


@dataclass
class ModelInfo:
    name: str
    source: str = ""
    kind: str = ""
    task: str = "unknown"
    source_sha256: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class TargetInfo:
    name: str
    device: str = ""
    triple: str = ""
    cpu: str = ""
    accelerator: dict | None = None
    transport: dict = field(default_factory=dict)
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def transport_kind(self) -> str:
        return (self.transport or {}).get("kind", "local")


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str
    file: str
    extra: dict = field(default_factory=dict)


@dataclass
class MemoryInfo:
    """A microcontroller firmware's memory: what lands in flash and RAM, against the board's."""

    arena_bytes: int
    flash_bytes: int
    ram_bytes: int
    board_flash_bytes: int
    board_ram_bytes: int
    weights_bytes: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Artifact:
    entry: str
    files: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # backend specific: driver, device runtime, memory, ...
    extra: dict = field(default_factory=dict)

    @property
    def memory(self) -> MemoryInfo | None:
        mem = self.info.get("memory")
        return _build(MemoryInfo, mem) if isinstance(mem, dict) else None


@dataclass
class Validation:
    status: ValidationStatus
    reason: str = ""  # why it was not run
    extra: dict = field(default_factory=dict)  # passed: reference, max_abs_error, tolerance, ran_on, ...

    @classmethod
    def from_dict(cls, d: dict, where) -> Validation:
        text = d.get("status")
        if not isinstance(text, str):
            raise _damaged(where, "validation.status is missing")
        rest = {k: v for k, v in d.items() if k != "status"}
        if text == "passed":
            return cls(ValidationStatus.PASSED, extra=rest)
        if text.startswith("skipped"):
            return cls(ValidationStatus.SKIPPED, text.removeprefix("skipped").strip(" ()"), rest)
        if text.startswith("not run"):
            return cls(ValidationStatus.NOT_RUN, text.removeprefix("not run").lstrip(": "), rest)
        raise _damaged(where, f"validation.status {text!r} is not passed, skipped or not run")

    @property
    def text(self) -> str:
        """The status as manifests and reports spell it."""
        if self.status is ValidationStatus.PASSED:
            return "passed"
        if self.status is ValidationStatus.SKIPPED:
            return f"skipped ({self.reason})" if self.reason else "skipped"
        return f"not run: {self.reason}" if self.reason else "not run"

    def get(self, key: str, default=None):
        return self.extra.get(key, default)

    def to_dict(self) -> dict:
        return {"status": self.text, **self.extra}


@dataclass
class FileHash:
    sha256: str
    size: int


@dataclass
class Manifest:
    model: ModelInfo
    target: TargetInfo
    backend: str
    artifact: Artifact
    io_inputs: list[TensorSpec]
    io_outputs: list[TensorSpec]
    validation: Validation
    files: dict[str, FileHash]
    compile: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # sections of later stages: quantization, ...

    @classmethod
    def from_dict(cls, d, where) -> Manifest:
        """Check a manifest's shape and confinement and read it; BundleError naming the first problem."""
        if not isinstance(d, dict) or d.get("schema_version") != SCHEMA_VERSION:
            raise BundleError(f"{where}: unknown manifest schema (want schema_version {SCHEMA_VERSION})")
        for key, typ in REQUIRED.items():
            if not isinstance(d.get(key), typ):
                raise _damaged(where, f"manifest field {key!r} is missing or not a {typ.__name__}")
        for section in ("model", "target"):
            if not isinstance(d[section].get("name"), str):
                raise _damaged(where, f"manifest field {section}.name is missing")
        files = _files(d["files"], where)
        art = d["artifact"]
        if not isinstance(art.get("info", {}), dict) or not isinstance(art.get("files", []), list):
            raise _damaged(where, "artifact.info / artifact.files are malformed")
        named = [("artifact.entry", art.get("entry"))] + [("artifact.files", f) for f in art.get("files", [])]
        io = {side: _tensors(d["io"], side, where) for side in ("inputs", "outputs")}
        named += [(f"io.{side}[].file", t.file) for side in io for t in io[side]]
        for what, rel in named:
            safe_relpath(rel, what, where)
            if rel not in files:
                raise BundleError(f"{where}: {what} {rel!r} is not in the manifest's hashed files; the manifest "
                                  "was edited or damaged, recompile the bundle")
        rest = _split(cls, d)[1]
        return cls(model=_build(ModelInfo, d["model"]), target=_build(TargetInfo, d["target"]),
                   backend=d["backend"], artifact=_build(Artifact, art), io_inputs=io["inputs"],
                   io_outputs=io["outputs"], validation=Validation.from_dict(d["validation"], where), files=files,
                   compile=d["compile"], versions=d["versions"], options=d.get("options", {}),
                   extra={k: v for k, v in rest.items() if k not in ("io", "schema_version")})

    def to_dict(self) -> dict:
        """The JSON form, keys in the order edgecc writes them."""
        return {"model": _to_dict(self.model), "target": _to_dict(self.target), "backend": self.backend,
               "options": self.options, "artifact": _to_dict(self.artifact), "compile": self.compile,
               "versions": self.versions,
               "io": {"inputs": [_to_dict(t) for t in self.io_inputs],
                      "outputs": [_to_dict(t) for t in self.io_outputs]},
               "validation": self.validation.to_dict(), **self.extra, "schema_version": SCHEMA_VERSION,
               "files": {rel: dataclasses.asdict(h) for rel, h in self.files.items()}}


# sections every manifest has, and the JSON type each must be
REQUIRED = {"model": dict, "target": dict, "backend": str, "artifact": dict, "io": dict, "validation": dict,
            "compile": dict, "versions": dict, "files": dict}


def _files(files: dict, where) -> dict[str, FileHash]:
    out = {}
    for rel, meta in files.items():
        safe_relpath(rel, "file", where)
        if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and isinstance(meta.get("size"), int)
                and not isinstance(meta.get("size"), bool)):
            raise BundleError(f"{where}: files[{rel!r}] needs a sha256 and a size; recompile the bundle")
        out[rel] = FileHash(meta["sha256"], meta["size"])
    return out


def _tensors(io: dict, side: str, where) -> list[TensorSpec]:
    specs = io.get(side)
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise BundleError(f"{where}: io.{side} is missing or malformed; recompile the bundle")
    out = []
    for s in specs:
        if not (isinstance(s.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in s["shape"])
                and isinstance(s.get("dtype"), str)):
            raise BundleError(f"{where}: io.{side} entry {s.get('name')!r} has no valid shape/dtype; "
                              "recompile the bundle")
        known, rest = _split(TensorSpec, s)
        known.setdefault("name", "")
        known.setdefault("file", None)
        out.append(TensorSpec(**known, extra=rest))
    return out
