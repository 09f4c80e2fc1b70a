"""TVM tuning: MetaSchedule databases per target, applied automatically at compile time, and default CPU
schedules for what no database covers.

A database lives in `targets/tuning/<target>/` (MetaSchedule's JSON database: `database_workload.json` +
`database_tuning_record.json`). Records are keyed by the fused TIR workload (structural hash), so every model
that shares a layer shape with a tuned one reuses its schedule. `edgecc tune MODEL --target T` tunes the
model's workloads and merges the best records into that folder (or `--database DIR`).

Functions the database does not cover get a default schedule instead of TVM's naive single-threaded loops:
edgecc's register-tiled convolutions / matmuls and parallel element-wise loops (cpu_schedule.py), on the
channels-last graph (channels_last.py) unless the database has records for the graph as imported, then dlight's
CPU GEMV/reduction rules for what those do not take (softmax, norms).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from edgecc.errors import DeviceError, TargetError, first_line
from edgecc.targets import TARGETS_DIR

TUNING_ROOT = TARGETS_DIR / "tuning"
WORKLOADS, RECORDS = "database_workload.json", "database_tuning_record.json"
DEFAULT_SCHEDULES = "edgecc RegisterTiledReduction + ParallelElementwise, then dlight cpu GEMV/Reduction"


def check_tunable(target, device) -> tuple[dict, str]:
    """(the resolved TVM target, the cross compiler to build with) for `edgecc tune`, or TargetError saying why this
    target / device pair cannot be tuned: only CPU (llvm) targets, measured here or through an RPC tracker."""
    from edgecc.compiler.backends.tvm import resolve_tvm_target

    cfg = target.backend("tvm")
    tvm_target = resolve_tvm_target(cfg)
    if device is not None and device.kind != "rpc":
        raise TargetError(f"edgecc tune --device {device.text}: tuning measures through a TVM RPC tracker; use "
                          "--device rpc://tracker-host:port/device-key, or no --device for this machine")
    if tvm_target.get("kind") != "llvm":
        raise TargetError(f"edgecc tune tunes CPU targets (tvm_target kind llvm); {target.name} is "
                          f"{tvm_target.get('kind')}")
    if device is None and cfg.cross_compiler:
        raise TargetError(f"edgecc tune measures on this machine: target {target.name} (llvm, {cfg.cross_compiler}) "
                          "does not run here; tune over the device's RPC tracker with --device rpc://HOST:PORT/KEY")
    return tvm_target, cfg.cross_compiler if device is not None else ""


def database_dir(target_name: str) -> Path:
    return TUNING_ROOT / target_name


def has_database(path: Path) -> bool:
    return (path / WORKLOADS).is_file() and (path / RECORDS).is_file()


def open_database(path: Path):
    from tvm.s_tir import meta_schedule as ms

    return ms.database.JSONDatabase(path_workload=str(path / WORKLOADS), path_tuning_record=str(path / RECORDS),
                                    allow_missing=True, module_equality="structural")


def default_cpu_schedule(fallbacks: list | None = None, used: dict | None = None):
    """The pass scheduling every function no tuning record covers (CPU targets): edgecc's register-tiled
    reductions and parallel element-wise loops (cpu_schedule.py), then dlight's CPU rules for the rest (softmax,
    norms). A rule that fails on a function (dlight's CPU Reduction raised ScheduleError 'compute-at' on
    AlexNet's and VGG-19's dense layers) is skipped for that function: the next rule, or TVM's default loops,
    schedule it instead; each skip is appended to `fallbacks` as {"function", "rule", "error"}, and `used`
    counts the functions each rule scheduled."""
    from tvm.s_tir import dlight as dl

    from edgecc.compiler.backends.tvm.cpu_schedule import ParallelElementwise, RegisterTiledReduction

    rules = [RegisterTiledReduction(), ParallelElementwise(), dl.cpu.GEMV(), dl.cpu.Reduction()]
    return dl.ApplyDefaultSchedule(*[_guarded(rule, fallbacks, used) for rule in rules])


def _guarded(rule, fallbacks: list | None, used: dict | None = None):
    """`rule`, returning None (does not apply) where it raises, and noting where it did."""
    from tvm.s_tir import dlight as dl

    class Guarded(dl.ScheduleRule):
        def apply(self, func, target, tunable):
            try:
                sch = rule.apply(func, target, tunable)
                if sch is not None and used is not None:
                    used[type(rule).__name__] = used.get(type(rule).__name__, 0) + 1
                return sch
            except Exception as e:  # a rule's failure is that rule not applying, not a failed build
                if fallbacks is not None:
                    fallbacks.append({"function": _first_block(func), "rule": type(rule).__name__,
                                      "error": first_line(e, 160)})
                return None

    return Guarded()


def build(mod, tvm_target, database_path: Path | None, partial: bool = True, fast_math: bool = True):
    """tvm.compile for a CPU target with the tuning database (when there is one) and default CPU schedules for
    the rest. `partial`: apply a database that covers only some of the model's convolution/matmul functions (the
    user's own, `--option tuning_db=`); the target's shipped database (partial=False), tuned on other models, is
    applied only where it covers all of them (graph_for_schedules). `fast_math`: see fuse(). Returns (executable,
    facts for the manifest)."""
    import contextlib

    import tvm
    from tvm import relax

    target = tvm.target.Target(tvm_target)
    facts: dict = {"default_schedules": DEFAULT_SCHEDULES,
                   "fast_math": "float32 exp/tanh/erf/sigmoid as TOPI's fast_* approximations" if fast_math
                   else "off (libm calls)"}
    database = open_database(database_path) if database_path and has_database(database_path) else None
    other_cpu = database is not None and tuned_elsewhere(database_path, tvm_target)
    if other_cpu and not partial:  # the shipped database, tuned on another CPU: its schedules are not this one's
        database = None
    mod, facts["graph_layout"] = graph_for_schedules(mod, target, database, partial, fast_math)
    if other_cpu:
        facts["graph_layout"] += f"; the tuning database was tuned for {other_cpu}, this build is for " \
            f"{tvm_target.get('mcpu')}" + ("" if partial else ": not used")
    applied: list[str] = []
    fallbacks: list[dict] = []
    used: dict[str, int] = {}

    def pipeline_with(db, schedule: bool):
        @tvm.transform.module_pass(opt_level=3)
        def pipeline(mod, _ctx):
            mod = fuse(mod, target, fast_math)
            if db is not None:
                mod, names = apply_records(mod)
                applied.extend(names)
            if schedule:
                mod = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
                mod = default_cpu_schedule(fallbacks, used)(mod)
                # the weights the schedules laid out anew (cpu_schedule._prepack_weight): once, at build time
                mod = relax.transform.FoldConstant()(relax.transform.SplitLayoutRewritePreproc()(mod))
            return tvm.transform.Sequential(_lower_passes(target))(mod)
        return pipeline

    def compile_with(db, schedule: bool):
        with target, db if db is not None else contextlib.nullcontext(), tvm.transform.PassContext(opt_level=3):
            return relax.build(mod, target=target, relax_pipeline=pipeline_with(db, schedule))

    try:
        ex = compile_with(database, True)
    except Exception as e:
        if not _is_schedule_error(e):
            raise
        # a schedule that fails to lower: once more with TVM's own loops only (no records, no default rules)
        applied.clear()
        facts["schedule_fallback"] = f"database and default schedules off: {type(e).__name__}: {first_line(e, 200)}"
        ex = compile_with(None, False)
    if used and "schedule_fallback" not in facts:
        facts["default_schedule_functions"] = dict(sorted(used.items()))
    if fallbacks:
        facts["schedule_rule_fallbacks"] = fallbacks
    if database is not None and "schedule_fallback" not in facts:
        facts["tuning_database"] = str(database_path)
        facts["tuned_functions"] = len(applied)
    return ex, facts


def tuned_elsewhere(database_path: Path, tvm_target: dict) -> str:
    """The CPUs (mcpu) the database's records were measured on, when none is the build's; "" when one is, or
    when the records or the build name no CPU. ResNet-18's host records, tuned on Zen 5 (znver5), made it 36.4 ms
    on a Zen 4 host where the default rules take 26.4 ms (2 threads, 20 iterations)."""
    mcpu = tvm_target.get("mcpu", "")
    cpus = set()
    for line in (database_path / RECORDS).read_text().splitlines():
        try:
            cpus.add(json.loads(line)[1][2].get("mcpu", ""))
        except (ValueError, IndexError, TypeError, AttributeError):
            continue
    cpus.discard("")
    return "" if not mcpu or not cpus or mcpu in cpus else ", ".join(sorted(cpus))


def graph_for_schedules(mod, target, database, partial: bool = True, fast_math: bool = True) -> tuple:
    """(the Relax module to build, what was decided): the imported graph as it is where the tuning database has
    records for its functions (they were tuned in that form and win over the default rules), else the
    channels-last graph the default rules tile best (channels_last.py). With partial=False (the target's shipped
    database) the records must cover every convolution and matmul function: ResNet-18's records covered 5 of
    ResNet-50's 24, and the rest, left to the default rules on the NCHW graph, which they do not vectorize, made
    ResNet-50 34.6x ONNX Runtime."""
    from edgecc.compiler.backends.tvm.channels_last import channels_last

    note = ""
    if database is not None:
        tuned, heavy = _tuned_functions(mod, target, database, fast_math)
        covers = f"the tuning database covers {len(heavy & tuned)} of {len(heavy)} convolution/matmul functions"
        if tuned and (heavy <= tuned or partial):
            return mod, f"as imported: {len(tuned)} functions have tuning records" + (
                "" if heavy <= tuned else f"; {covers}, the rest get unvectorized default loops")
        if tuned:
            note = f"; {covers}, not all: not used"
    try:
        return channels_last(mod), "NHWC: BatchNorm folded, conv2d NHWC/HWIO" + note
    except Exception as e:  # a layout the conversion does not handle: the default rules take the graph as it is
        return mod, f"as imported: channels_last failed: {type(e).__name__}: {first_line(e, 160)}"


HEAVY_OPS = ("conv", "matmul", "dense")  # in a fused function's name: the functions that do the model's MACs


def _tuned_functions(mod, target, database, fast_math: bool = True) -> tuple[set, set]:
    """(the module's fused functions the database has a record for, its convolution/matmul functions)."""
    import tvm

    with target, database, tvm.transform.PassContext(opt_level=3):
        fused = fuse(mod, target, fast_math)
        heavy = {gv.name_hint for gv, f in fused.functions_items()
                 if isinstance(f, tvm.tirx.PrimFunc) and any(op in gv.name_hint for op in HEAVY_OPS)}
        return set(apply_records(fused)[1]), heavy


def apply_records(fused) -> tuple:
    """(the fused module with the current database's records applied, the names of the functions they scheduled);
    run inside the database's context."""
    from tvm.relax.transform import MetaScheduleApplyDatabase

    before = {gv.name_hint for gv, f in fused.functions_items() if _scheduled(f)}
    fused = MetaScheduleApplyDatabase()(fused)
    return fused, sorted({gv.name_hint for gv, f in fused.functions_items() if _scheduled(f)} - before)


def _first_block(func) -> str:
    """A name for a PrimFunc that has no global symbol yet: its first block's (the fused op's) name."""
    import re

    names = [n for n in re.findall(r'block\("([^"]+)"', str(func)) if n != "root"]
    return names[0] if names else "?"


def _is_schedule_error(e: Exception) -> bool:
    text = f"{type(e).__name__} {e}"
    return "ScheduleError" in text or "schedule" in text.lower()


def fuse(mod, target, fast_math: bool = True):
    """Legalize and fuse: the TIR functions tuning records are keyed by (same passes when tuning and building).
    `fast_math`: on a CPU, float32 exp/tanh/erf/sigmoid as TOPI's vectorizable approximations (fast_math.py)."""
    import tvm
    from tvm import relax

    t = relax.transform
    fused = tvm.transform.Sequential([*_dispatch_passes(target), t.LegalizeOps(), t.AnnotateTIROpPattern(),
                                      t.FoldConstant(), t.FuseOps(), t.FuseTIR()])(mod)
    if fast_math and target.kind.name == "llvm":
        from edgecc.compiler.backends.tvm.fast_math import fast_math as rewrite

        fused = rewrite(fused)
    return fused


def _dispatch_passes(target) -> list:
    from tvm.relax import pipeline as rp

    try:
        return list(rp.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        return []


def _lower_passes(target) -> list:
    """Relax's own dataflow-lowering and finalization passes for the target (the CPU backend's module does not
    export them in TVM 0.27: the list below is the same as its pipeline's)."""
    from tvm import relax
    from tvm.relax import pipeline as rp

    try:
        return list(rp.dataflow_lower_passes(target)) + list(rp.finalize_passes(target))
    except (ValueError, AttributeError):
        t = relax.transform
        return [t.RewriteDataflowReshape(), t.ToNonDataflow(), t.RemovePurityChecking(), t.CallTIRRewrite(),
                t.StaticPlanBlockMemory(), t.LowerAllocTensor(), t.KillAfterLastUse(), t.LowerRuntimeBuiltin(),
                t.ComputePrimValue(), t.VMShapeLower(), t.AttachGlobalSymbol()]


def _scheduled(func) -> bool:
    from tvm import tirx

    if not isinstance(func, tirx.PrimFunc) or func.attrs is None:
        return False
    return bool(func.attrs.get("tirx.is_scheduled", False)) or bool(func.attrs.get("tir.is_scheduled", False))


def tune(mod, tvm_target: dict, database_path: Path, trials: int, seed: int = 0, device=None,
         cross_compiler: str = "", timeout: float = 120, work_dir: Path | None = None) -> dict:
    """Tune the module's workloads with MetaSchedule, then merge the records into `database_path`, keeping the
    faster record per workload. Candidates are measured on this machine (local builder and runner), or, with
    `device` (an rpc:// Device), built here (with `cross_compiler` when the target has one) and timed on the
    device through its TVM RPC tracker. A stopped run resumes: candidates are kept in `work_dir` (default
    <database>/../.edgecc-tune/<run key>) until they are merged, and the same call continues with the trials left.

        tune(mod, {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}, Path("db"), 64,
             device=parse_device("rpc://farm:9190/rk3588"), cross_compiler="aarch64-linux-gnu-g++")
    """
    import functools

    import tvm
    from tvm.s_tir import meta_schedule as ms

    if trials < 1:
        raise TargetError(f"--trials {trials}: give a positive number of measurement trials")
    # build and run timeouts follow `timeout`: MetaSchedule's 30 s default covers a worker's import of TVM plus
    # the build, which a loaded machine exceeds, and every candidate then fails
    if device is not None:
        tvm_target, runner = _rpc_runner(tvm_target, device, timeout)
    else:
        runner = ms.runner.LocalRunner(timeout_sec=timeout)
        if tvm_target.get("kind") == "llvm" and "num-cores" not in tvm_target:
            import os

            tvm_target = {**tvm_target, "num-cores": os.cpu_count() or 1}  # MetaSchedule's CPU rules need it
    export = functools.partial(export_cross, cross_compiler) if cross_compiler else None
    builder = ms.builder.LocalBuilder(timeout_sec=timeout, f_export=export)
    target = tvm.target.Target(tvm_target)
    with target:
        fused = fuse(mod, target)
    # trials per round: spread the budget so every workload gets measured candidates (64 per round, the
    # default, spends a small budget on the first few tasks only)
    n_tasks = max(1, len(ms.relax_integration.extract_tasks(fused, target)))
    per_round = max(4, min(64, trials // n_tasks))
    # MetaSchedule writes every measured candidate to its work folder as it goes: a run that is stopped leaves
    # them there, and the same command again continues from them with the trials that are left
    work = work_dir or database_path.parent / ".edgecc-tune" / _run_key(fused, tvm_target, seed)
    done = _records_in(work)
    if done < trials:
        work.mkdir(parents=True, exist_ok=True)
        ms.relax_integration.tune_relax(fused, params={}, target=target, work_dir=str(work),
                                        max_trials_global=trials - done, num_trials_per_iter=per_round, seed=seed,
                                        builder=builder, runner=runner)
    records = [r for r in open_database(work).get_all_tuning_records() if _measured(r)] if work.exists() else []
    if not records:
        where = device.text if device is not None else "this machine"
        raise (DeviceError if device is not None else TargetError)(
            f"no candidate ran on {where} ({trials} trials: every build or run failed); nothing written "
            f"to {database_path}")
    database_path.mkdir(parents=True, exist_ok=True)
    merged = _merge(database_path, records)
    shutil.rmtree(work, ignore_errors=True)  # merged: nothing left to resume
    return {"trials": trials, "resumed_from": done, "tasks": n_tasks, "trials_per_round": per_round,
            "records": len(records), "database": str(database_path), "work_dir": str(work),
            "num_cores": tvm_target.get("num-cores"), "measured_on": device.text if device is not None else "local",
            **merged}


def _run_key(fused, tvm_target: dict, seed: int) -> str:
    """Names a tuning run by what it tunes (the fused module, the target, the seed): the same command finds it."""
    import hashlib

    text = f"{fused.script(show_meta=False)}|{json.dumps(tvm_target, sort_keys=True, default=str)}|{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _records_in(work: Path) -> int:
    """Candidates a stopped run already measured (failed ones count: they spent trials too)."""
    f = work / RECORDS
    return sum(1 for line in f.read_text().splitlines() if line.strip()) if f.exists() else 0


def _rpc_runner(tvm_target: dict, device, timeout: float):
    """MetaSchedule's RPC runner on the device's tracker key. The device is asked first (a missing key would
    make the runner wait forever); its TVM runtime's thread count is the num-cores the CPU rules use unless the
    target file sets one."""
    from tvm.s_tir import meta_schedule as ms

    from edgecc.runtime.rpc import probe_rpc_device

    probe = probe_rpc_device(device, timeout)
    if tvm_target.get("kind") == "llvm" and "num-cores" not in tvm_target:
        tvm_target = {**tvm_target, "num-cores": probe["num_threads"]}
    runner = ms.runner.RPCRunner(rpc_config=ms.runner.RPCConfig(
        tracker_host=device.host, tracker_port=device.port, tracker_key=device.key, session_timeout_sec=int(timeout)))
    return tvm_target, runner


def export_cross(cross_compiler: str, rt_mod) -> str:
    """MetaSchedule export function: the candidate as a shared object linked by the target's cross compiler
    (the default exports a .tar of objects that the device's RPC server would link with its own compiler)."""
    import os

    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(prefix="edgecc-ms-"), "candidate.so")
    rt_mod.export_library(path, fcompile=cc.cross_compiler(cross_compiler))
    return path


def _measured(record) -> bool:
    """A record whose run succeeded (MetaSchedule stores failed builds/runs with 1e10 s or no times)."""
    secs = [float(x) for x in record.run_secs or []]
    return bool(secs) and max(secs) < 1e9


def _merge(database_path: Path, records) -> dict:
    """Merge tuning records into the database folder (written to a temp copy, then moved into place)."""
    with tempfile.TemporaryDirectory(prefix="edgecc-db-", dir=database_path.parent) as tmp:
        staged = Path(tmp)
        for name in (WORKLOADS, RECORDS):
            if (database_path / name).exists():
                shutil.copy(database_path / name, staged / name)
        db = open_database(staged)
        before = len(db.get_all_tuning_records())
        for rec in records:
            ws = db.commit_workload(rec.workload.mod)
            db.commit_tuning_record(type(rec)(rec.trace, ws, rec.run_secs, rec.target, rec.args_info))
        after = _keep_best(staged / RECORDS)
        for name in (WORKLOADS, RECORDS):
            shutil.move(str(staged / name), database_path / name)
    return {"records_before": before, "records_after": after}


def _keep_best(records_file: Path) -> int:
    """Keep the fastest measured record per workload (what compile applies); the others only seed future searches
    and would make the committed database grow with every run. Returns the records kept."""
    best: dict[int, tuple[float, str]] = {}
    for line in records_file.read_text().splitlines():
        if not line.strip():
            continue
        workload, (_trace, run_secs, *_rest) = json.loads(line)
        secs = [float(x) for x in run_secs or []]
        mean = sum(secs) / len(secs) if secs else float("inf")
        if workload not in best or mean < best[workload][0]:
            best[workload] = (mean, line)
    records_file.write_text("".join(line + "\n" for _, (_, line) in sorted(best.items())))
    return len(best)
