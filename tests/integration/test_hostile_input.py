"""Hostile and careless input against the real CLI: each case, its documented exit code, one line on stderr, and
nothing outside the bundle read (strace) or written (a snapshot of the folder around it).

The cases follow the hardening issue: -o never deletes what is not a bundle, a .pt2 never unpickles, nothing in a
manifest is executed or names a path outside the bundle, NaN never validates, gates refuse bad data, factories
cannot exit edgecc, signals clean up, options are checked, numbers are range-checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, assert_clean_failure, edgecc_cli

TINY = f"{DATA}/tiny_factory.py:build"


def plain_cli(*args, cwd=None, timeout=600):
    """The CLI with the user's environment as it is (no PYTHONWARNINGS), to see what leaks to stderr."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def traced_cli(trace: Path, *args, cwd=None):
    """The CLI under strace: every path any process of it named in a file system call lands in `trace`."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    argv = ["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(trace), sys.executable, "-m", "edgecc",
            *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


def snapshot(root: Path, skip: Path | None = None) -> dict:
    """Every file below root (but not below `skip`) with its size and mtime: a write anywhere changes it."""
    out = {}
    for dirpath, dirnames, names in os.walk(root):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            continue
        for n in names + [x for x in dirnames if (d / x).is_symlink()]:
            st = os.lstat(d / n)
            out[str((d / n).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small TVM bundle to copy and damage (no test changes it in place)."""
    root = tmp_path_factory.mktemp("tiny")
    r = edgecc_cli("compile", TINY, "-b", "tvm", "-o", root / "b")
    assert r.returncode == 0, r.stderr
    from edgecc.manifest import Manifest

    on_disk = json.loads((root / "b" / "manifest.json").read_text())
    assert Manifest.from_dict(on_disk, "m").to_dict() == on_disk  # the typed manifest loses nothing
    return root / "b"


def forge(bundle: Path, edit) -> Path:
    """What an attacker who knows the format does: edit manifest.json, then recompute manifest.sha256, so that only
    edgecc's own rules (not a stale hash) can refuse the result."""
    m = json.loads((bundle / "manifest.json").read_text())
    edit(m)
    (bundle / "manifest.json").write_text(json.dumps(m))
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    (bundle / "manifest.sha256").write_text(f"{digest}  manifest.json\n")
    return bundle


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---- 1. -o replaces only a bundle ---------------------------------------------------------------------------

def test_output_that_is_not_a_bundle_is_refused_and_kept(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    r = edgecc_cli("compile", TINY, "-b", "tvm", "-o", tmp_path / "v")
    assert_clean_failure(r, 8, "is not an edgecc bundle", "--force")
    assert snapshot(tmp_path) == before


def test_output_dot_is_refused_even_with_force(tmp_path):
    shutil.copy(DATA / "tiny_factory.py", tmp_path / "net.py")
    before = snapshot(tmp_path)
    for extra in ([], ["--force"]):
        r = edgecc_cli("compile", "net.py:build", "-b", "tvm", "-o", ".", *extra, cwd=tmp_path)
        assert_clean_failure(r, 8, "choose another -o")
        assert snapshot(tmp_path) == before


def test_symlink_output_never_writes_through(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "precious")
    before = snapshot(tmp_path)
    assert_clean_failure(edgecc_cli("compile", TINY, "-b", "tvm", "-o", tmp_path / "link"), 8, "is a symlink")
    assert snapshot(tmp_path) == before
    # --force replaces the link itself with a bundle, never the folder it pointed at
    r = edgecc_cli("compile", TINY, "-b", "tvm", "-o", tmp_path / "link", "--force")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link" / "manifest.json").is_file()
    assert (tmp_path / "precious" / "data.txt").read_text() == "keep"


def test_existing_file_is_refused_and_nothing_left_beside_it(tmp_path):
    (tmp_path / "out").write_text("a file")
    before = snapshot(tmp_path)
    assert_clean_failure(edgecc_cli("compile", TINY, "-b", "tvm", "-o", tmp_path / "out"), 8, "existing file")
    assert snapshot(tmp_path) == before


def test_a_bundle_and_an_empty_folder_are_replaced(tmp_path, tiny):
    (tmp_path / "empty").mkdir()
    assert edgecc_cli("compile", TINY, "-b", "tvm", "-o", tmp_path / "empty").returncode == 0
    b = copy_bundle(tiny, tmp_path / "again")
    r = edgecc_cli("compile", TINY, "-b", "tvm", "-o", b)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "empty"]  # no .old / .tmp left
    # a bundle that no longer verifies is not a bundle edgecc can replace
    (b / "extra.txt").write_text("user file")
    assert_clean_failure(edgecc_cli("compile", TINY, "-b", "tvm", "-o", b), 8, "extra.txt is not in the manifest")
    assert (b / "extra.txt").exists()


def test_bundles_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        assert edgecc_cli("compile", TINY, "-b", "tvm", "-o", tmp_path / "b").returncode == 0
    finally:
        os.umask(old)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("where, needle", [
    ("/proc/edgecc-out", "cannot create the bundle folder"),
    ("FILE/sub", "is a file"),
])
def test_output_that_cannot_be_created(tmp_path, where, needle):
    (tmp_path / "FILE").write_text("x")
    out = where.replace("FILE", str(tmp_path / "FILE"))
    assert_clean_failure(edgecc_cli("compile", TINY, "-b", "tvm", "-o", out), 8, needle)


def test_read_only_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=False, capture_output=True)
    if os.access(ro, os.W_OK) and not _is_read_only(ro):
        pytest.skip("cannot mount a read-only tmpfs here (not root, or no mount namespace)")
    try:
        assert_clean_failure(edgecc_cli("compile", TINY, "-b", "tvm", "-o", ro / "b"), 8, "Read-only file system")
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def _is_read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


@pytest.mark.parametrize("name", ["../escaped", "/abs", ".hidden", "a/b"])
def test_name_cannot_leave_the_build_folder(tmp_path, name):
    before = snapshot(tmp_path)
    assert_clean_failure(edgecc_cli("compile", TINY, "-b", "tvm", "--name", name, cwd=tmp_path), 2,
                         "is not a plain name")
    assert snapshot(tmp_path) == before


# ---- 2. a .pt2 never unpickles ------------------------------------------------------------------------------

@pytest.mark.parametrize("via", ["sample_inputs", "weights"])
def test_pt2_with_a_code_running_pickle(tmp_path, via):
    from tests.data.hostile_pt2 import make_pt2

    marker = tmp_path / "pwned"
    pt2 = make_pt2(tmp_path / f"{via}.pt2", marker, via)
    for cmd in (["compile", pt2, "-b", "tvm", "-o", tmp_path / "b"], ["tune", pt2, "--trials", "1"]):
        assert_clean_failure(edgecc_cli(*cmd), 4, "pickled data", "--allow-pickle")
        assert not marker.exists() and not (tmp_path / "b").exists()
    # the payload is live: with the opt-in, loading the same file does run it
    edgecc_cli("compile", pt2, "-b", "tvm", "-o", tmp_path / "b", "--allow-pickle")
    assert marker.exists()


# ---- 3./4. manifests: hashed, confined, never executed -----------------------------------------------------

def test_flash_command_comes_from_the_installed_board(tmp_path):
    r = edgecc_cli("compile", TINY, "-t", "cortex-m4", "--board", "NUCLEO-L4R5ZI", "--no-validate",
                   "-o", tmp_path / "m4")
    assert r.returncode == 0, r.stderr
    marker = tmp_path / "pwned"
    b = tmp_path / "m4"
    m = json.loads((b / "manifest.json").read_text())
    m["artifact"]["info"]["flash_command"] = f"touch {marker}"
    (b / "manifest.json").write_text(json.dumps(m))
    # an edit without the hash is damage ...
    assert_clean_failure(edgecc_cli("verify", b), 8, "manifest.json does not match manifest.sha256")
    # ... and with the hash recomputed, the installed board's command is the one that would run
    forge(b, lambda m: None)
    r = edgecc_cli("deploy", b, "--device", "board:NUCLEO-L4R5ZI")
    assert r.returncode == 11, r.stderr  # pyocd is not installed here: the installed command is named
    assert "pyocd" in r.stderr and "touch" not in r.stderr
    assert not marker.exists()


OUTSIDE = "outside/secret.txt"


@pytest.mark.parametrize("case, needle", [
    ("files_parent", "is not a plain relative path inside the bundle"),
    ("files_absolute", "is not a plain relative path inside the bundle"),
    ("entry_outside", "artifact.entry"),
    ("entry_unlisted", "is not in the manifest's hashed files"),
    ("io_outside", "io.inputs[].file"),
    ("only_schema", "manifest field 'model' is missing"),
    ("files_malformed", "needs a sha256 and a size"),
    ("io_malformed", "io.inputs is missing or malformed"),
])
def test_manifest_paths_stay_inside_the_bundle(tmp_path, tiny, case, needle):
    secret = tmp_path / OUTSIDE
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:secret\n" * 30)
    b = copy_bundle(tiny, tmp_path / "b")
    rel = os.path.relpath(secret, b)
    meta = {"sha256": hashlib.sha256(secret.read_bytes()).hexdigest(), "size": secret.stat().st_size}

    def edit(m):
        if case == "files_parent":
            m["files"][rel] = meta
        elif case == "files_absolute":
            m["files"][str(secret)] = meta
        elif case == "entry_outside":
            m["artifact"]["entry"] = rel
        elif case == "entry_unlisted":
            m["artifact"]["entry"] = "model2.so"
        elif case == "io_outside":
            m["io"]["inputs"][0]["file"] = str(secret)
        elif case == "only_schema":
            m.clear()
            m["schema_version"] = 1
        elif case == "files_malformed":
            m["files"]["model.so"] = "deadbeef"
        elif case == "io_malformed":
            m["io"]["inputs"] = "input_0.npy"

    forge(b, edit)
    before = snapshot(tmp_path, skip=b)
    for cmd in ("verify", "run", "bench"):
        trace = tmp_path / f"{cmd}.strace"
        r = traced_cli(trace, cmd, b)
        assert_clean_failure(r, 8, needle)
        assert str(meta["size"]) not in r.stderr  # no size of an outside file leaks
        named = [ln for ln in trace.read_text().splitlines() if "secret.txt" in ln]
        assert not named, named  # not opened, not stat'ed: no syscall of edgecc's names the outside file
        trace.unlink()
    assert snapshot(tmp_path, skip=b) == before


def test_symlinks_in_a_bundle_are_refused(tmp_path, tiny):
    secret = tmp_path / OUTSIDE
    secret.parent.mkdir()
    secret.write_text("secret")
    b = copy_bundle(tiny, tmp_path / "b")
    entry = json.loads((b / "manifest.json").read_text())["artifact"]["entry"]
    (b / "input_0.npy").unlink()
    (b / "input_0.npy").symlink_to(secret)
    (b / "leak").symlink_to(secret.parent)
    trace = tmp_path / "t.strace"
    for cmd in ("verify", "run"):
        r = traced_cli(trace, cmd, b)
        assert_clean_failure(r, 8, "is a symlink")
        assert not [ln for ln in trace.read_text().splitlines() if "secret.txt" in ln and "open" in ln]
    assert (b / entry).is_file()


def test_deploy_ssh_refuses_a_forged_runtime(tmp_path, tiny):
    b = forge(copy_bundle(tiny, tmp_path / "b"), lambda m: m["artifact"]["info"].update(
        device_runtime="pip install x'; touch /tmp/pwned; '==1"))
    r = edgecc_cli("deploy", b, "--device", "ssh://user@127.0.0.1:1")
    assert_clean_failure(r, 3, "is not one edgecc installs")


# ---- 5. NaN never validates ---------------------------------------------------------------------------------

def test_nan_in_the_reference_does_not_validate(tmp_path, tiny):
    b = copy_bundle(tiny, tmp_path / "b")
    ref = np.load(b / "reference_output_0.npy")
    ref[...] = np.nan
    np.save(b / "reference_output_0.npy", ref)

    def rehash(m):
        data = (b / "reference_output_0.npy").read_bytes()
        m["files"]["reference_output_0.npy"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    forge(b, rehash)
    r = plain_cli("deploy", b, "--device", "host")
    assert_clean_failure(r, 7, "non-finite value(s) differ from the reference")  # one line: no numpy warning


# ---- 6. the compare gate refuses bad data -------------------------------------------------------------------

def _report(samples):
    from edgecc.runtime.report import make_report
    from edgecc.runtime.stats import Timing

    with np.errstate(invalid="ignore"):  # statistics of NaN/inf samples: the CLI must refuse them, not this
        t = Timing(samples=samples or [], unit="ms", method="wall clock", warmup=1,
                   iterations=len(samples or [])).to_dict()
    run = {"bundle": "build/m-host-iree", "model": "m", "target": "host", "backend": "iree",
           "device": {"spec": "host", "kind": "host"}, "status": "ok", "timing": t,
           "numerics": {"status": "passed", "max_abs_error": 1e-6}, "baselines": []}
    return make_report([run] if samples is not None else [], env={})


@pytest.mark.parametrize("base, new, code, needle", [
    ([1.0, 1.1], [float("nan"), 1.0], 15, "is not a finite, non-negative"),
    ([1.0, 1.1], [float("inf"), 1.0], 15, "is not a finite, non-negative"),
    ([1.0, 1.1], [-1.0, -2.0], 15, "is not a finite, non-negative"),
    ([1.0, 1.1], [], 15, "timing has no samples"),
    (None, [1.0], 15, "the base report has no runs"),
    ([0.0, 0.0], [1.0, 1.0], 16, "base p50 is 0"),
])
def test_compare_gate_fails_on_bad_data(tmp_path, base, new, code, needle):
    def dump(name, samples):
        doc = _report(samples)
        (tmp_path / name).write_text(json.dumps(doc))  # NaN/inf as JSON's NaN/Infinity, as Python writes them
        return tmp_path / name

    r = plain_cli("report", "compare", dump("base.json", base), dump("new.json", new))
    assert r.returncode == code, r.stdout + r.stderr
    assert needle in r.stdout + r.stderr and "nan%" not in r.stdout
    assert len(r.stderr.strip().splitlines()) == 1


def test_broken_report_runs_are_a_one_line_error(tmp_path):
    doc = _report([1.0])
    doc["runs"].append(1)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    assert_clean_failure(edgecc_cli("report", tmp_path / "r.json", "-o", tmp_path / "x.html"), 15, "a run without")


def test_report_to_a_folder_leaves_nothing(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(_report([1.0, 2.0])))
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path)
    assert_clean_failure(edgecc_cli("report", tmp_path / "r.json", "-o", tmp_path / "out"), 2, "is a folder")
    assert snapshot(tmp_path) == before


def test_two_bundles_of_one_model_stay_two_runs_when_merged(tmp_path):
    a, b = _report([1.0]), _report([2.0])
    b["runs"][0]["bundle"] = "build/m-host-iree-fast"
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    r = edgecc_cli("report", tmp_path / "a.json", tmp_path / "b.json", "-o", tmp_path / "r.html", "--markdown")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("| m | host | iree |") == 2


# ---- 7. a factory cannot exit edgecc ------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["import", "factory"])
@pytest.mark.parametrize("code", [0, 3])
def test_factory_sys_exit_is_a_model_error(tmp_path, where, code):
    body = (f"import sys\nsys.exit({code})\n" if where == "import" else
            f"import sys\n\ndef build():\n    sys.exit({code})\n")
    (tmp_path / "net.py").write_text(body)
    r = edgecc_cli("compile", tmp_path / "net.py:build", "-b", "tvm", "-o", tmp_path / "out" / "b")
    assert_clean_failure(r, 4, f"sys.exit({code})", out_dir=tmp_path / "out" / "b")


# ---- 8. signals: temp folders and child compilers go -------------------------------------------------------

def _start_iree_compile(out: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "edgecc", "compile", "resnet8", "-b", "iree", "-o", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    import psutil

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        kids = [c for c in psutil.Process(proc.pid).children(recursive=True) if "iree-compile" in " ".join(
            _cmdline(c))]
        if kids and list(out.parent.glob(f".{out.name}.tmp-*")):
            return proc, kids
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"iree-compile never started: {proc.communicate()[1][-500:]}")


def _cmdline(p):
    try:
        return p.cmdline()
    except Exception:
        return []


def _gone(kids, timeout=10.0) -> bool:
    import psutil

    _, alive = psutil.wait_procs(kids, timeout=timeout)
    return not alive


def test_sigterm_cleans_up_like_sigint(tmp_path):
    out = tmp_path / "build" / "b"
    proc, kids = _start_iree_compile(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []
    assert _gone(kids)


def test_sigkill_leaves_no_compiler_and_the_next_compile_cleans(tmp_path):
    out = tmp_path / "build" / "b"
    proc, kids = _start_iree_compile(out)
    proc.kill()
    proc.wait()
    assert _gone(kids), "iree-compile outlived edgecc"
    stale = list(out.parent.glob(f".{out.name}.tmp-*"))
    assert stale
    r = edgecc_cli("compile", TINY, "-b", "tvm", "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"removed {stale[0]}" in r.stderr
    assert [p.name for p in out.parent.iterdir()] == ["b"]


# ---- 9. options are checked --------------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["-t", "cortex-m4", "--option", "codegne=llvm"], "unknown micro option(s) codegne; valid micro options: codegen"),
    (["-b", "iree", "--option", "nhwc_grpah=1"], "unknown iree option(s) nhwc_grpah"),
    (["-b", "tvm", "--option", "tuning=x"], "valid tvm options: fast_math, int8, tuning_db"),
    (["-t", "cortex-m4", "--option", "board=mps2-an500"], "choose the board with --board"),
    (["-b", "tvm", "--flag=--bogus"], "passes no compiler flags"),
    (["-t", "cortex-m4", "--option", "opt=-O9"], "expected one of -O0"),
    (["-t", "cortex-m4", "--option", "stack_kb=-1"], "stack_kb=-1"),
])
def test_options_are_validated(tmp_path, args, needle):
    out = tmp_path / "out" / "b"
    assert_clean_failure(edgecc_cli("compile", TINY, *args, "-o", out), 3, needle, out_dir=out)


# ---- 10. a refused RPC tracker fails fast -------------------------------------------------------------------

def test_refused_rpc_tracker_fails_fast(tiny):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t0 = time.monotonic()
    r = edgecc_cli("bench", tiny, "--device", f"rpc://127.0.0.1:{port}/host", "--iters", "2")
    assert_clean_failure(r, 12, "cannot reach the TVM RPC tracker", "Connection refused")
    assert time.monotonic() - t0 < 30


# ---- 11. run -o keeps every output --------------------------------------------------------------------------

def test_run_output_paths(tmp_path):
    b = tmp_path / "two"
    assert edgecc_cli("compile", f"{DATA}/tiny_factory.py:two_outputs", "-b", "tvm", "-o", b).returncode == 0
    r = edgecc_cli("run", b, "-o", tmp_path / "yy")
    assert r.returncode == 0, r.stderr
    a0, a1 = np.load(tmp_path / "yy_0.npy"), np.load(tmp_path / "yy_1.npy")
    assert a0.shape == (1, 3) and a1.shape == (1, 2) and not (tmp_path / "yy.npy").exists()
    assert f"-> {tmp_path / 'yy_1.npy'}" in r.stdout
    (tmp_path / "outs").mkdir()
    r = edgecc_cli("run", b, "-o", tmp_path / "outs")
    assert r.returncode == 0 and sorted(p.name for p in (tmp_path / "outs").iterdir()) == ["output_0.npy",
                                                                                         "output_1.npy"]
    assert f"-> {tmp_path / 'outs' / 'output_0.npy'}" in r.stdout
    r = edgecc_cli("run", b, "-o", f"{tmp_path}/new/")
    assert r.returncode == 0 and (tmp_path / "new" / "output_1.npy").is_file(), r.stderr


# ---- 12. numbers are range-checked --------------------------------------------------------------------------

@pytest.mark.parametrize("cmd, needle", [
    (["bench", "B", "--iters", "0"], "--iters/-n: must be 1 or more, got 0"),
    (["bench", "B", "--iters", "-1"], "must be 1 or more"),
    (["bench", "B", "--warmup", "-5"], "--warmup: must be 0 or more"),
    (["bench", "B", "--timeout", "0"], "--timeout: must be a number of seconds above 0"),
    (["bench", "B", "--timeout", "nan"], "must be a number of seconds above 0"),
    (["bench", "B", "--threads", "-2"], "--threads: must be 0 or more"),
    (["bench", "B", "--retries", "-1"], "--retries: must be 0 or more"),
    (["tune", "resnet8", "--trials", "0"], "--trials: must be 1 or more"),
    (["build", "-j", "0"], "--jobs: must be 1 or more"),
    (["deploy", "B", "-d", "host", "--timeout", "-3"], "--timeout"),
    (["report", "compare", "B", "B", "--max-error-change", "-1"], "--max-error-change"),
    (["compile", "resnet8", "--input-shape", "1x3x100000x100000"], "more than 1,073,741,824"),
])
def test_numbers_are_range_checked(tiny, cmd, needle):
    r = edgecc_cli(*[str(tiny) if c == "B" else c for c in cmd])
    assert_clean_failure(r, 2, needle)


def test_bench_in_the_bundle_folder(tmp_path, tiny):
    b = copy_bundle(tiny, tmp_path / "b")
    r = edgecc_cli("bench", ".", "--iters", "2", "--warmup", "0", "--json", tmp_path / "r.json", cwd=b)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["timing"]["stats"]["n"] == 2
    r = edgecc_cli("bench", ".", "--iters", "2", "--warmup", "0", cwd=b)
    assert r.returncode == 0 and (tmp_path / "b.bench.json").is_file(), r.stderr


def test_negative_gate_threshold(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(_report([1.0])))
    r = edgecc_cli("report", "compare", tmp_path / "r.json", tmp_path / "r.json", "--max-regression=-5%")
    assert_clean_failure(r, 2, "bad threshold")


# ---- 14. expected failures have their codes -----------------------------------------------------------------

def test_onnx_with_two_dynamic_inputs_and_one_shape(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 4])
    g = helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "add", [x, y], [z])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "add.onnx")
    r = edgecc_cli("compile", tmp_path / "add.onnx", "-b", "tvm", "--input-shape", "1x4", "-o", tmp_path / "o" / "b")
    assert_clean_failure(r, 4, "--input-shape given 1 time(s)", "has 2 input(s) (x, y)", out_dir=tmp_path / "o" / "b")


def test_build_config_types(tmp_path):
    (tmp_path / "m.toml").write_text('jobs = "two"\n')
    assert_clean_failure(edgecc_cli("build", "--config", tmp_path / "m.toml"), 2, 'jobs = \'two\'')
    (tmp_path / "m.toml").write_text('models = "resnet8"\n')
    assert_clean_failure(edgecc_cli("build", "--config", tmp_path / "m.toml"), 2, "models must be a list")


def test_usage_errors_are_one_line():
    r = edgecc_cli("bench")
    assert_clean_failure(r, 2, "the following arguments are required")
    assert_clean_failure(edgecc_cli("frobnicate"), 2, "invalid choice")


# ---- 15. a failed tool's repro points at a folder that exists ----------------------------------------------

def test_failed_tool_keeps_its_work_folder(tmp_path):
    out = tmp_path / "build" / "b"
    r = edgecc_cli("compile", TINY, "-b", "iree", "--flag=--no-such-iree-flag", "-o", out)
    assert_clean_failure(r, 6, "iree-compile failed", "repro:")
    kept = out.parent / ".b.failed"
    assert kept.is_dir() and str(kept) in r.stderr and ".tmp-" not in r.stderr
    repro = r.stderr.split("repro: ", 1)[1].split(" (work folder")[0].strip()
    rerun = subprocess.run(repro, shell=True, capture_output=True, text=True, timeout=300)
    assert rerun.returncode != 0 and "no-such-iree-flag" in rerun.stderr  # the same failure, pasted
    assert not out.exists()
    # the next good compile to the same place removes the kept folder
    assert edgecc_cli("compile", TINY, "-b", "tvm", "-o", out).returncode == 0
    assert not kept.exists()


# ---- 16. minor ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["ssh://-oProxyCommand=touch${IFS}/tmp/x", "ssh://user@-oProxyCommand=x"])
def test_ssh_host_cannot_be_an_option(tiny, device):
    assert_clean_failure(edgecc_cli("deploy", tiny, "--device", device), 3, "unknown device")


def test_ssh_argv_ends_options_before_the_destination():
    from edgecc.runtime.devices import SshOptions, parse_device
    from edgecc.runtime.ssh import SshDevice

    argv = SshDevice(parse_device("ssh://pi@board:2222"), SshOptions()).argv("true")
    assert argv[-3:] == ["--", "pi@board", "true"]

