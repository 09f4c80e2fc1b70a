"""Bundles: atomic staging, manifest hashes, verification of tampered / truncated / extra / missing files."""

import json
import os

import pytest

from edgecc.bundle import MANIFEST, Bundle, check_replaceable, clean_stale, staging, write_manifest
from edgecc.errors import BundleError
from edgecc.manifest import Manifest, ValidationStatus, safe_relpath

# the sections every manifest has (edgecc.bundle.REQUIRED), with the entry and io files hashed
MINIMAL = {"backend": "iree", "options": {},
           "model": {"name": "m", "source": "m", "kind": "torch", "task": "unknown", "source_sha256": ""},
           "target": {"name": "host", "device": "x86", "triple": "x86_64-linux-gnu", "cpu": "host", "accelerator": None,
                      "transport": {"kind": "local", "options": {}}, "source": "host.toml"},
           "validation": {"status": "passed"},
           "artifact": {"entry": "model.bin", "files": ["model.bin"], "info": {}}, "compile": {}, "versions": {},
           "io": {"inputs": [{"name": "x", "shape": [1], "dtype": "float32", "file": "sub/x.txt"}], "outputs": []},
           "schema_version": 1}
FILES = {"model.bin": {"sha256": "0", "size": 1}, "sub/x.txt": {"sha256": "0", "size": 1}}


def make_bundle(path):
    with staging(path) as tmp:
        (tmp / "model.bin").write_bytes(b"\x00" * 1000)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.txt").write_text("hello")
        write_manifest(tmp, MINIMAL)
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
    (lambda p: (p / MANIFEST).write_text((p / MANIFEST).read_text().replace('"m"', '"n"')),
     "manifest.json does not match manifest.sha256"),
    (lambda p: (p / "manifest.sha256").unlink(), "manifest.sha256 is missing"),
    (lambda p: (p / "link").symlink_to("/etc"), "link is a symlink"),
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


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../b", "./a", "a//b", "a\\b", "", "a/.", 7])
def test_manifest_paths_must_be_plain_and_inside(rel):
    with pytest.raises(BundleError, match="not a plain relative path inside the bundle"):
        safe_relpath(rel, "file", "m.json")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("io"), "manifest field 'io' is missing"),
    (lambda m: m["artifact"].update(entry="other.bin"), "artifact.entry 'other.bin' is not in the manifest's hashed"),
    (lambda m: m["io"]["inputs"][0].update(file="../in.npy"), "io.inputs\\[\\].file '../in.npy' is not a plain"),
    (lambda m: m["io"]["inputs"][0].update(shape="1x3"), "has no valid shape/dtype"),
    (lambda m: m["files"].update({"model.bin": {"sha256": "x"}}), "needs a sha256 and a size"),
])
def test_manifest_shape_checked(edit, message):
    m = json.loads(json.dumps({**MINIMAL, "files": {"model.bin": {"sha256": "0", "size": 1},
                                                   "sub/x.txt": {"sha256": "0", "size": 1}}}))
    Manifest.from_dict(m, "m.json")
    edit(m)
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(m, "m.json")


def test_replace_only_what_is_a_bundle(tmp_path):
    make_bundle(tmp_path / "b")
    check_replaceable(tmp_path / "b")  # a verified bundle
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")
    check_replaceable(tmp_path / "new")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match="--force"):
        check_replaceable(tmp_path / "mine")
    check_replaceable(tmp_path / "mine", force=True)


def test_stale_temp_folders_of_dead_runs_are_removed(tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now: a run that was killed
    (tmp_path / f".b.tmp-{dead.pid}-abc").mkdir()
    (tmp_path / f".b.tmp-{os.getpid()}-live").mkdir()  # a run in progress: kept
    (tmp_path / ".other.tmp-1-x").mkdir()  # another bundle's: kept
    removed = clean_stale(tmp_path / "b")
    assert [p.name for p in removed] == [f".b.tmp-{dead.pid}-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".b.tmp-{os.getpid()}-live", ".other.tmp-1-x"]


def test_manifest_round_trips_through_its_types(tmp_path):
    b = make_bundle(tmp_path / "b")
    on_disk = json.loads((b.path / MANIFEST).read_text())
    assert Manifest.from_dict(on_disk, "m").to_dict() == on_disk
    assert b.meta.validation.status is ValidationStatus.PASSED and b.meta.io_inputs[0].file == "sub/x.txt"
    assert b.meta.artifact.memory is None and b.meta.files["model.bin"].size == 1000


@pytest.mark.parametrize("text, status, reason", [
    ("passed", ValidationStatus.PASSED, ""),
    ("skipped (--no-validate)", ValidationStatus.SKIPPED, "--no-validate"),
    ("not run: needs a CUDA GPU", ValidationStatus.NOT_RUN, "needs a CUDA GPU"),
])
def test_validation_status_is_an_enum_and_keeps_its_text(text, status, reason):
    m = json.loads(json.dumps({**MINIMAL, "validation": {"status": text}, "files": FILES}))
    v = Manifest.from_dict(m, "m").validation
    assert (v.status, v.reason, v.text) == (status, reason, text)
    m["validation"]["status"] = "fine"
    with pytest.raises(BundleError, match="is not passed, skipped or not run"):
        Manifest.from_dict(m, "m")


def test_memory_section_is_typed():
    mem = {"arena_bytes": 576, "flash_bytes": 9044, "ram_bytes": 9444, "board_flash_bytes": 1 << 22,
           "board_ram_bytes": 1 << 22, "weights_bytes": 3060, "sections": {".text": 4636}}
    m = json.loads(json.dumps({**MINIMAL, "files": FILES}))
    m["artifact"]["info"]["memory"] = mem
    typed = Manifest.from_dict(m, "m")
    assert typed.artifact.memory.flash_bytes == 9044 and typed.artifact.memory.extra == {"sections": {".text": 4636}}
    assert typed.to_dict() == m
