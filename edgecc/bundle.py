"""Bundles: `build/<model>-<target>-<backend>/` with the artifact, manifest.json, reference .npy files.

A bundle is assembled in a temporary sibling folder and renamed into place only when complete, so a failed
compile leaves nothing half-written. manifest.json records the sha256 and size of every other file, and
manifest.sha256 the sha256 of manifest.json itself (`sha256sum -c manifest.sha256` checks it anywhere).
`verify` refuses missing, changed and unexpected files, symlinks, paths that leave the bundle, and a manifest
whose entry or io files are not in its hashed list. A compile replaces only a folder that is empty or a bundle
that verifies, unless forced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgecc.errors import BundleError, ToolError
from edgecc.manifest import SCHEMA_VERSION, Manifest

MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"


class Bundle:
    """A compiled, validated, self-describing artifact folder. `Bundle.load(path)` verifies it first."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest  # the JSON form; `meta` is the same manifest, typed
        self._meta: Manifest | None = None

    @property
    def meta(self) -> Manifest:
        """The manifest as typed data (edgecc.manifest.Manifest), read and checked once."""
        if self._meta is None:
            self._meta = Manifest.from_dict(self.manifest, self.path / MANIFEST)
        return self._meta

    @classmethod
    def load(cls, path, verify: bool = True) -> Bundle:
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"bundle {path} does not exist (compile one with `edgecc compile`)")
        mpath = path / MANIFEST
        if mpath.is_symlink() or not mpath.is_file():
            raise BundleError(f"{path} is not a bundle: no {MANIFEST}")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{mpath} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); "
                              "the bundle is damaged, recompile it") from None
        bundle = cls(path, manifest)
        bundle._meta = Manifest.from_dict(manifest, mpath)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> int:
        """Check the manifest's own hash and every file's sha256 and size; refuse symlinks, unlisted files and
        listed paths that leave the bundle. Raises BundleError naming the first problems; returns the file count."""
        problems = _manifest_hash_problems(self.path)
        listed = self.meta.files
        entries = _walk(self.path)
        links = {rel for rel in entries if (self.path / rel).is_symlink()}
        problems += [f"{rel} is a symlink (bundles hold plain files only)" for rel in sorted(links)]
        for rel, meta in sorted(listed.items()):
            f = self.path / rel
            if rel in links:
                continue
            if not f.is_file():
                problems.append(f"{rel} is missing")
            elif f.stat().st_size != meta.size:
                problems.append(f"{rel} has {f.stat().st_size} bytes, manifest says {meta.size} (truncated?)")
            elif sha256_file(f) != meta.sha256:
                problems.append(f"{rel} does not match its sha256 (modified)")
        present = {rel for rel in entries if rel not in links and (self.path / rel).is_file()}
        extra = sorted(present - set(listed) - {MANIFEST, MANIFEST_HASH})
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
        return [_load_npy(self.path / i["file"]) for i in self.manifest["io"]["inputs"]]

    def reference_outputs(self) -> list[np.ndarray]:
        return [_load_npy(self.path / o["file"]) for o in self.manifest["io"]["outputs"]]

    def runner(self):
        """The runner for this bundle on this machine (raises CannotRunHere with the reason if none)."""
        from edgecc.runtime.runners import runner_for

        return runner_for(self)

    def __repr__(self) -> str:
        m = self.manifest
        return f"Bundle({str(self.path)!r}, model={m['model'].get('name')!r}, target={m['target'].get('name')!r}, " \
               f"backend={m['backend']!r})"


def manifest_digest(folder: Path) -> str:
    return sha256_file(Path(folder) / MANIFEST)


def _manifest_hash_problems(folder: Path) -> list[str]:
    hfile = folder / MANIFEST_HASH
    if hfile.is_symlink() or not hfile.is_file():
        return [f"{MANIFEST_HASH} is missing (the manifest is not covered by a hash)"]
    want = hfile.read_text(errors="replace").split()
    if not want or want[0] != manifest_digest(folder):
        return [f"{MANIFEST} does not match {MANIFEST_HASH} (edited)"]
    return []


def _walk(folder: Path) -> list[str]:
    """Every entry below `folder` (files, symlinks), relative POSIX paths, without following links."""
    out = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        r = Path(root)
        for n in names + [d for d in dirs if (r / d).is_symlink()]:
            out.append((r / n).relative_to(folder).as_posix())
    return out


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise BundleError(f"{path} is not a plain .npy array ({e}); recompile the bundle") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(final: Path) -> list[Path]:
    """Remove the temp folders that a killed compile to `final` left beside it (their process is gone);
    returns them, so the caller can name them."""
    removed = []
    stale = re.compile(rf"\.{re.escape(final.name)}\.(?:tmp|old)-(\d+)(?:-.*)?")
    for p in sorted(final.parent.iterdir()):
        m = stale.fullmatch(p.name)
        if m and not _pid_alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


def check_replaceable(final: Path, force: bool = False) -> None:
    """A compile may replace only an empty folder or a bundle that verifies (or anything, with force, but never
    through a symlink). BundleError that says to pass --force or choose another folder."""
    final = Path(final)
    hint = "pass --force to replace it, or choose another -o"
    if final.is_symlink():
        if not force:
            raise BundleError(f"output {final} is a symlink; edgecc does not write through links: {hint}")
        return
    if final.is_dir() and (Path.cwd() == final.resolve() or final.resolve() in Path.cwd().parents):
        raise BundleError(f"output {final} contains the current folder; edgecc never replaces that, not even with "
                          "--force: choose another -o")
    if not final.exists():
        ancestor = next((a for a in final.absolute().parents if a.exists()), None)
        if ancestor is not None and not ancestor.is_dir():
            raise BundleError(f"cannot create the bundle folder {final}: {ancestor} is a file; choose another -o")
        return
    if force:
        return
    if not final.is_dir():
        raise BundleError(f"output {final} is an existing file, not a bundle: {hint}")
    if not any(final.iterdir()):
        return
    try:
        Bundle.load(final)
    except BundleError as e:
        why = "it has no manifest.json" if not (final / MANIFEST).exists() else str(e).split(": ", 1)[-1]
        raise BundleError(f"output {final} is not an edgecc bundle edgecc can replace ({why}): {hint}") from None


@contextlib.contextmanager
def staging(final: Path, force: bool = False, note=None):
    """Yield a temp folder beside `final`; on success it replaces `final` atomically, on error it vanishes.

    `final` must be replaceable (check_replaceable). Temp folders that killed runs left are removed first and named
    through `note`. When a tool fails, the work folder is kept as `.NAME.failed` beside `final`, and the error's
    message and repro line point there instead of the deleted temp folder."""
    final = Path(os.path.abspath(final))
    note = note or (lambda msg: None)
    check_replaceable(final, force)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        for p in clean_stale(final):
            note(f"removed {p}, a temp folder left by a killed edgecc run")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    except OSError as e:
        raise BundleError(f"cannot create the bundle folder {final}: {e.strerror or e}; choose another -o") from None
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    failed = final.parent / f".{final.name}.failed"
    try:
        yield tmp
        old = None
        if final.is_symlink() or final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.rename(final, old)
        os.rename(tmp, final)
        if old is not None:
            _remove(old)
        if failed.exists():
            _remove(failed)
    except ToolError as e:
        if tmp.exists():
            _remove(failed)
            os.rename(tmp, failed)
            _point_error_at(e, tmp, failed)
        raise
    except OSError as e:
        raise BundleError(f"writing the bundle {final} failed: {e.strerror or e}; choose another -o") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _point_error_at(e: ToolError, tmp: Path, kept: Path) -> None:
    """Rewrite a tool error's message and repro line from the temp folder to the kept work folder."""
    swap = lambda text: text.replace(str(tmp), str(kept)) if text else text  # noqa: E731
    e.repro, e.stderr = swap(e.repro), swap(e.stderr)
    e.argv = [swap(a) for a in e.argv] if e.argv else e.argv
    msg = swap(str(e))
    e.args = (msg + ("" if str(kept) in msg else f" (work folder kept in {kept})"),)


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Hash every file in `folder` into manifest["files"] and write manifest.json."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, MANIFEST_HASH):
            files[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": files}
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    Manifest.from_dict(json.loads(text), folder / MANIFEST)  # never write one that does not load
    (folder / MANIFEST).write_text(text)
    (folder / MANIFEST_HASH).write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  {MANIFEST}\n")
    return manifest
