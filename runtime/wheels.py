"""Wheels built for another platform (the aarch64 builds of the runtimes, from PyPI with `pip download
--platform manylinux_2_28_aarch64`), downloaded once into the edgecc cache and unpacked, never committed."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from edgecc.errors import CannotRunHere, ToolError
from edgecc.tools import run_tool


def cache_dir() -> Path:
    return Path(os.environ.get("EDGECC_CACHE", Path.home() / ".cache" / "edgecc"))


def foreign_wheel(package: str, version: str, platform: str, python: str = "3.11") -> Path:
    """Download (once) and unpack a wheel built for another platform; returns the unpacked folder."""
    check_version(package, version)
    dest = cache_dir() / "wheels" / f"{package}-{version}-{platform}"
    if (dest / ".complete").is_file():
        return dest
    wheels = cache_dir() / "wheels" / "download"
    wheels.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--platform", platform,
            "--python-version", python, "-d", str(wheels), f"{package}=={version}"]
    try:
        run_tool(argv, timeout=900)
    except ToolError as e:
        raise CannotRunHere(f"could not fetch the {platform} wheel of {package}=={version}: {e}") from None
    stem = package.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-{version}-*{platform.split('_', 2)[-1]}*.whl"))
    if not found:
        raise CannotRunHere(f"no {platform} wheel of {package}=={version} found after download")
    tmp = Path(tempfile.mkdtemp(dir=wheels))
    with zipfile.ZipFile(found[-1]) as z:
        z.extractall(tmp)
    for f in tmp.rglob("*"):
        if f.is_file() and (f.suffix == "" or ".so" in f.name):
            f.chmod(0o755)
    (tmp / ".complete").write_text(found[-1].name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        import shutil

        shutil.rmtree(dest)
    os.rename(tmp, dest)
    return dest


def check_version(package: str, version) -> str:
    """A version string as it may go into `pip download package==version`."""
    from edgecc.errors import BundleError

    if not isinstance(version, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version):
        raise BundleError(f"{package} version {version!r} in the manifest is not a version; recompile the bundle")
    return version
