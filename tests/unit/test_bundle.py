"""Bundles: atomic staging, manifest hashes, verification of tampered / truncated / extra / missing files."""

import json

import pytest

from edgecc.compiler.bundle import MANIFEST, Bundle, staging, write_manifest
from edgecc.compiler.errors import BundleError


def make_bundle(path):
    with staging(path) as tmp:
        (tmp / "model.bin").write_bytes(b"\x00" * 1000)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.txt").write_text("hello")
        write_manifest(tmp, {"backend": "iree", "model": {"name": "m"}, "target": {"name": "host"}})
    return Bundle.load(path)


def test_staging_renames_complete_bundle_into_place(tmp_path):
    b = make_bundle(tmp_path / "b")
    assert b.verify() == 2
    assert set(b.manifest["files"]) == {"model.bin", "sub/x.txt"}
    assert [p.name for p in tmp_path.iterdir()] == ["b"], "no temp folders left behind"


def test_failed_stage_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staging(tmp_path / "b") as tmp:
            (tmp / "half.bin").write_bytes(b"1")
            raise RuntimeError("compile failed")
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_the_old_bundle(tmp_path):
    make_bundle(tmp_path / "b")
    with pytest.raises(RuntimeError):
        with staging(tmp_path / "b"):
            raise RuntimeError("compile failed")
    Bundle.load(tmp_path / "b")  # still complete and verified


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "model.bin").write_bytes(b"\x00" * 10), "model.bin has 10 bytes, manifest says 1000"),
    (lambda p: (p / "model.bin").write_bytes(b"\x01" + b"\x00" * 999), "model.bin does not match its sha256"),
    (lambda p: (p / "sub" / "x.txt").unlink(), "sub/x.txt is missing"),
    (lambda p: (p / "evil.sh").write_text("rm -rf /"), "evil.sh is not in the manifest"),
    (lambda p: (p / MANIFEST).write_text("{not json"), "is not valid JSON"),
    (lambda p: (p / MANIFEST).unlink(), "is not a bundle: no manifest.json"),
])
def test_verify_catches_damage(tmp_path, damage, message):
    b = make_bundle(tmp_path / "b")
    damage(b.path)
    with pytest.raises(BundleError, match=message):
        Bundle.load(b.path)


def test_manifest_schema_version_checked(tmp_path):
    b = make_bundle(tmp_path / "b")
    m = json.loads((b.path / MANIFEST).read_text())
    m["schema_version"] = 99
    (b.path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unknown manifest schema"):
        Bundle.load(b.path)


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(tmp_path / "nope")
