"""Bundles: `build/<model>-<target>-<backend>/` with the artifact, manifest.json, reference .npy files.

A bundle is assembled in a temporary sibling folder and renamed into place only when complete, so a failed
compile leaves nothing half-written. manifest.json records the sha256 and size of every other file;
`verify` refuses missing, changed and unexpected files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgecc.compiler.errors import BundleError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


class Bundle:
    """A compiled, validated, self-describing artifact folder. `Bundle.load(path)` verifies it first."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def load(cls, path, verify: bool = True) -> Bundle:
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"bundle {path} does not exist (compile one with `edgecc compile`)")
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{path} is not a bundle: no {MANIFEST}")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{mpath} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); "
                              "the bundle is damaged, recompile it") from None
        if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
            raise BundleError(f"{mpath}: unknown manifest schema (want schema_version {SCHEMA_VERSION})")
        bundle = cls(path, manifest)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> int:
        """Check every file's sha256 and size; raise BundleError naming the first problems. Returns file count."""
        listed = self.manifest.get("files", {})
        problems = []
        for rel, meta in sorted(listed.items()):
            f = self.path / rel
            if not f.is_file():
                problems.append(f"{rel} is missing")
            elif f.stat().st_size != meta["size"]:
                problems.append(f"{rel} has {f.stat().st_size} bytes, manifest says {meta['size']} (truncated?)")
            elif sha256_file(f) != meta["sha256"]:
                problems.append(f"{rel} does not match its sha256 (modified)")
        present = {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}
        extra = sorted(present - set(listed) - {MANIFEST})
        problems += [f"{rel} is not in the manifest" for rel in extra]
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise BundleError(f"bundle {self.path} failed verification: {'; '.join(problems[:3])}{more}")
        return len(listed)

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    def artifact(self) -> Path:
        return self.path / self.manifest["artifact"]["entry"]

    def reference_inputs(self) -> list[np.ndarray]:
        return [np.load(self.path / i["file"]) for i in self.manifest["io"]["inputs"]]

    def reference_outputs(self) -> list[np.ndarray]:
        return [np.load(self.path / o["file"]) for o in self.manifest["io"]["outputs"]]

    def runner(self):
        """The runner for this bundle on this machine (raises CannotRunHere with the reason if none)."""
        from edgecc.compiler.backends import get_backend

        return get_backend(self.backend).runner(self)

    def __repr__(self) -> str:
        m = self.manifest
        return f"Bundle({str(self.path)!r}, model={m['model']['name']!r}, target={m['target']['name']!r}, " \
               f"backend={m['backend']!r})"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def staging(final: Path):
    """Yield a temp folder beside `final`; on success it replaces `final` atomically, on error it vanishes."""
    final = Path(final).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.rename(final, old)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Hash every file in `folder` into manifest["files"] and write manifest.json."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest
