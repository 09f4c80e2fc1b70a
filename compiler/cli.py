"""The `edgecc` command line. Errors print one line on stderr and exit non-zero (see EXIT CODES);
`--debug` shows the traceback."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from edgecc.errors import EdgeccError

EPILOG = """exit codes: 0 ok, 1 error, 2 usage (a bad argument or value), 3 target/backend/option, 4 model,
5 unsupported op, 6 tool failed, 7 validation mismatch, 8 bundle damaged or not replaceable, 9 over memory budget,
10 package missing, 11 cannot run here, 12 device unreachable / copy failed, 13 device install failed, 14 run on
device failed, 15 report unreadable or invalid, 16 regression beyond the compare gate, 130 SIGINT, 143 SIGTERM"""


MAX_INPUT_ELEMENTS = 1 << 30  # 4 GiB of fp32 in one example input: beyond any edge model, and beyond this RAM


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}; write it like 1x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}; dimensions must be positive")
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise argparse.ArgumentTypeError(f"shape {text!r} has {math.prod(dims):,} elements, more than "
                                         f"{MAX_INPUT_ELEMENTS:,}; give the shape the device will run")
    return dims


def _int_at_least(low: int):
    """argparse type: a whole number >= low."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, got {n}")
        return n
    parse.__name__ = f"integer >= {low}"
    return parse


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return t


def _non_negative(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(x) or x < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return x


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error of every other edgecc failure (exit 2, usage behind --help)."""

    def error(self, message):
        command = self.prog.removeprefix("edgecc").strip()
        self.exit(2, f"edgecc: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"bad option {text!r}; write it as KEY=VALUE, e.g. codegen=llvm")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgecc", description="Compile PyTorch models into validated, timed "
                                "deployment bundles for edge devices.", epilog=EPILOG)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("compile", help="compile a model into a bundle")
    c.add_argument("model", help="zoo name, path/file.py:factory, model.pt2 or model.onnx")
    c.add_argument("--target", "-t", default="host", help="target name (see `edgecc targets`) or a .toml file")
    c.add_argument("--backend", "-b", help="iree | tvm | micro | tensorrt (default: the target's)")
    c.add_argument("-o", "--output", help="bundle folder (default build/<model>-<target>-<backend>)")
    c.add_argument("--input-shape", action="append", type=_shape, help="input shape, e.g. 1x3x64x64 (repeat per input)")
    c.add_argument("--flag", action="append", default=[], help="extra backend compiler flag (repeatable)")
    c.add_argument("--board", default="", help="MCU targets: board name (see `edgecc targets show`)")
    c.add_argument("--option", action="append", default=[], type=_option, metavar="KEY=VALUE",
                   help="backend option, e.g. codegen=llvm for micro (repeatable)")
    c.add_argument("--no-validate", action="store_true", help="do not run the artifact against the reference")
    c.add_argument("--allow-pickle", action="store_true", help="allow loading a pickled model (runs its code!)")
    c.add_argument("--keep-intermediates", action="store_true", help="keep work/ (MLIR, etc.) in the bundle")
    c.add_argument("--name", help="model name used in the bundle")
    c.add_argument("--quantize", choices=["int8"], help="static post-training quantization before compiling")
    c.add_argument("--calibration", default="", metavar="DATASET|DIR",
                   help="calibration samples for --quantize: a dataset name (digits) or a folder of .npy inputs")
    c.add_argument("--json", action="store_true", help="print the manifest as JSON")
    c.add_argument("--force", action="store_true", help="replace the -o folder even if it is not an edgecc bundle "
                   "(its contents are deleted)")

    tu = sub.add_parser("tune", help="tune a model's TVM workloads with MetaSchedule into the target's database")
    tu.add_argument("model", help="zoo name, path/file.py:factory, model.pt2 or model.onnx")
    tu.add_argument("--target", "-t", default="host", help="a CPU target (without --device: one that runs here)")
    tu.add_argument("--trials", type=_int_at_least(1), default=200,
                    help="measurement trials over all the model's workloads")
    tu.add_argument("--database", help="database folder (default: targets/tuning/<target>/, used by compile)")
    tu.add_argument("--device", "-d", help="rpc://tracker:port/key: build here (with the target's cross compiler) "
                    "and time candidates on the device through its TVM RPC tracker (default: this machine). "
                    "num-cores: the target's tvm_target value if it sets one, else the thread count of the TVM "
                    "runtime on the device, asked over RPC")
    tu.add_argument("--timeout", type=_seconds, default=120, help="seconds each candidate may take to build and to "
                    "run (with --device: also to reach the tracker and get a session)")
    tu.add_argument("--input-shape", action="append", type=_shape, help="input shape (repeat per input)")
    tu.add_argument("--seed", type=int, default=0)
    tu.add_argument("--allow-pickle", action="store_true", help="allow loading a pickled model (runs its code!)")

    m = sub.add_parser("build", help="build a models x targets x backends matrix (CI); writes summary.json/.md")
    m.add_argument("--config", help="TOML with models / targets / backends / jobs / output")
    m.add_argument("--models", help="comma-separated (default: the zoo; tiny models only on MCU targets)")
    m.add_argument("--targets", help="comma-separated (default: every target)")
    m.add_argument("--backends", help="comma-separated (default: every implemented backend of each target)")
    m.add_argument("-j", "--jobs", type=_int_at_least(1), help="parallel processes (default: CPU count)")
    m.add_argument("-o", "--output", help="folder for bundles and the summary (default: build)")

    t = sub.add_parser("targets", help="list targets, or `targets show NAME`")
    t.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    t.add_argument("name", nargs="?")
    t.add_argument("--json", action="store_true")

    m = sub.add_parser("models", help="list the model zoo")
    m.add_argument("--json", action="store_true")

    v = sub.add_parser("verify", help="check every file of a bundle against its manifest")
    v.add_argument("bundle")

    r = sub.add_parser("run", help="run a bundle once and print/save its outputs")
    r.add_argument("bundle")
    r.add_argument("--input", "-i", action="append", help=".npy input (repeat per input; default: the reference)")
    r.add_argument("--output", "-o", help="save the output to this .npy; with several outputs NAME_0.npy, "
                   "NAME_1.npy, ...; an existing folder (or one ending in /) gets output_N.npy inside")

    b = sub.add_parser("bench", help="time bundles (each in its own process): warm-up + N iterations")
    b.add_argument("bundle", nargs="+")
    b.add_argument("--warmup", type=_int_at_least(0), default=5)
    b.add_argument("--iters", "-n", type=_int_at_least(1), default=50)
    b.add_argument("--threads", type=_int_at_least(0), default=0, help="runtime threads (default: the runtime's)")
    b.add_argument("--json", dest="json_out", help="write the report JSON (schema edgecc.report/1) here (default: "
                   "<bundle>.bench.json for one bundle, bench.json beside the first for several)")
    b.add_argument("--device", "-d", help="host | qemu | ssh://user@host[:port] | rpc://tracker:port/key (default: "
                   "where each bundle's runner runs from here)")
    b.add_argument("--baselines", default="", help="comma-separated: ort,torch (ONNX Runtime, PyTorch eager; "
                   "same device, own processes)")
    b.add_argument("--chunk", type=_int_at_least(0), default=0,
                   help="remote devices: samples per round trip (default: 10)")
    b.add_argument("--retries", type=_int_at_least(0), default=2,
                   help="remote devices: retries of a chunk that drops or hangs")
    b.add_argument("--timeout", type=_seconds, default=600, help="seconds one chunk may take before the device "
                   "counts as hung")
    b.add_argument("--markdown", help="also write the Markdown table here")
    b.add_argument("--html", help="also write the HTML report here")
    b.add_argument("--format", choices=["table", "json", "markdown"], default="table",
                   help="what goes to stdout (json: the report, for CI logs)")
    _ssh_args(b)

    d = sub.add_parser("deploy", help="copy a bundle to a device, install its runtime, check one inference")
    d.add_argument("bundle")
    d.add_argument("--device", "-d", required=True, help="ssh://user@host[:port] | qemu | host | board[:NAME]")
    d.add_argument("--timeout", type=_seconds, default=900)
    d.add_argument("--json", action="store_true", help="print what was done as JSON")
    _ssh_args(d)

    rp = sub.add_parser("report", help="merge reports into one page; `report compare BASE NEW` is the CI gate")
    rp.add_argument("paths", nargs="+", metavar="DIR_OR_JSON", help="reports or folders of reports; or: "
                    "compare BASE.json NEW.json")
    rp.add_argument("-o", "--output", help="HTML page to write (default: report.html)")
    rp.add_argument("--markdown", nargs="?", const="-", help="write Markdown here (- or no value: stdout)")
    rp.add_argument("--json", dest="json_out", help="write the merged JSON here")
    rp.add_argument("--max-regression", default="10%", help="compare: allowed p50 growth (default 10%%)")
    rp.add_argument("--max-error-change", type=_non_negative,
                    help="compare: allowed change of the max abs error vs the "
                    "reference (default: the bundle's atol)")

    x = sub.add_parser("trtexec-report", help="turn trtexec output from a device (bench.sh of a tensorrt bundle) "
                       "into edgecc's latency report")
    x.add_argument("log", nargs="?", help="trtexec log with the Performance summary (OUT/trtexec.log)")
    x.add_argument("--times", help="trtexec --exportTimes JSON (raw per-inference samples)")
    x.add_argument("--profile", help="trtexec --exportProfile JSON (per-layer times)")
    x.add_argument("--json", dest="json_out", help="also write the report as JSON here")
    x.add_argument("--layers", type=_int_at_least(1), default=10, help="slowest layers to show (default 10)")
    return p


def _ssh_args(p) -> None:
    g = p.add_argument_group("ssh devices")
    g.add_argument("--identity", "-i", default="", help="private key (key auth only)")
    g.add_argument("--known-hosts", default="", help="known_hosts file (host keys are always checked)")
    g.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE", help="extra ssh -o option")
    g.add_argument("--remote-dir", default="", help="bundle folder on the device (default ~/.edgecc/bundles/<name>)")
    g.add_argument("--venv", default="", help="runtime venv on the device (default "
                   "~/.edgecc/venvs/<package>-<version>)")
    g.add_argument("--device-python", default="python3", help="interpreter on the device that creates the venv")
    g.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="extra pip install argument on the device, e.g. --pip-arg=--find-links=/wheels (repeatable)")


def _ssh_options(args):
    from edgecc.runtime.devices import SshOptions

    return SshOptions(identity=args.identity, known_hosts=args.known_hosts, extra=args.ssh_option,
                      remote_dir=args.remote_dir, venv=args.venv, python=args.device_python, pip_args=args.pip_arg)


def main(argv=None) -> int:
    import warnings

    # torch's export machinery warns about its own internals (pytree LeafSpec); users cannot act on it.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torch|copyreg)")
    # numpy's floating-point warnings (NaN/inf in a user's outputs or samples) are not edgecc's messages: the checks
    # that see those values say what is wrong in their own one line
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy")
    args = build_parser().parse_args(argv)
    _stop_on(signal.SIGTERM)
    try:
        return COMMANDS[args.cmd](args)
    except EdgeccError as e:
        if args.debug:
            raise
        print(f"edgecc: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM as Interrupted: staging removed its temp folder
        print(f"edgecc: {e or 'interrupted'}; nothing was written", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except Exception as e:  # a bug in edgecc or a tool: still one line, the traceback behind --debug
        if args.debug:
            raise
        print(f"edgecc: internal error: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
              " (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _stop_on(signum) -> None:
    """SIGTERM unwinds like SIGINT: temp folders are removed and running tools killed on the way out."""
    from edgecc.errors import Interrupted

    def stop(sig, frame):
        signal.signal(sig, signal.SIG_IGN)  # once: the cleanup itself is not interrupted again
        raise Interrupted(sig)

    try:
        signal.signal(signum, stop)
    except ValueError:  # not the main thread (main() called from a thread): keep the default
        pass


def _note(msg: str) -> None:
    """Something the user should know although the command succeeded (stale temp folders removed)."""
    print(f"edgecc: note: {msg}", file=sys.stderr)


def _log(args):
    # Progress goes to a terminal only: in CI logs and scripts stderr carries just the one-line error.
    if args.quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]edgecc:[/dim] {msg}")


def cmd_compile(args) -> int:
    from edgecc.compiler.driver import compile

    bundle = compile(args.model, target=args.target, backend=args.backend, output=args.output,
                     validate=not args.no_validate, extra_flags=args.flag, board=args.board,
                     input_shapes=args.input_shape, allow_pickle=args.allow_pickle,
                     keep_intermediates=args.keep_intermediates, name=args.name, options=dict(args.option),
                     quantize=args.quantize or "", calibration=args.calibration, force=args.force,
                     log=_log(args), note=_note)
    m = bundle.manifest
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    v = m["validation"]
    check = (f"validated vs {v['reference']}: {_check_text(v)}"
             + (f", top-1 {v['top1_agreement']:.0%}" if v.get("top1_agreement") is not None else "")
             if v["status"] == "passed" else v["status"])
    mem = m["artifact"]["info"].get("memory")
    if mem:  # microcontrollers: what counts is what lands in flash and RAM, against the board
        size = (f"flash {mem['flash_bytes'] / 1024:.1f}/{mem['board_flash_bytes'] / 1024:.0f} KiB, RAM "
                f"{mem['ram_bytes'] / 1024:.1f}/{mem['board_ram_bytes'] / 1024:.0f} KiB, arena "
                f"{mem['arena_bytes'] / 1024:.1f} KiB")
    else:
        size = f"{m['files'][m['artifact']['entry']]['size'] / 1024:.0f} KiB"
    print(f"{bundle.path}  ({m['artifact']['entry']}, {size}, compiled in {m['compile']['seconds']:.1f}s; {check})")
    q = m.get("quantization")
    if q:
        a = q["accuracy"]
        acc = (f"top-1 on {a['samples']} held-out {a['dataset']} images: fp32 {a['fp32_pytorch']:.2%}, int8 artifact "
               + (f"{a['int8_artifact']:.2%}" if isinstance(a["int8_artifact"], float) else a["int8_artifact"])
               if isinstance(a, dict) else a)
        print(f"int8: {acc}; weights {q['weights_bytes']['fp32']} -> {q['weights_bytes']['int8']} bytes")
    return 0


def cmd_tune(args) -> int:
    from edgecc.compiler import tvm_tune
    from edgecc.compiler.backends.tvm import TvmBackend, resolve_tvm_target
    from edgecc.compiler.frontends import load_model
    from edgecc.errors import TargetError
    from edgecc.runtime.devices import parse_device
    from edgecc.targets import get_target

    target = get_target(args.target)
    cfg = target.backend("tvm")
    tvm_target = resolve_tvm_target(cfg)
    device = parse_device(args.device)
    if device is not None and device.kind != "rpc":
        raise TargetError(f"edgecc tune --device {device.text}: tuning measures through a TVM RPC tracker; use "
                          "--device rpc://tracker-host:port/device-key, or no --device for this machine")
    if tvm_target.get("kind") != "llvm":
        raise TargetError(f"edgecc tune tunes CPU targets (tvm_target kind llvm); {target.name} is "
                          f"{tvm_target.get('kind')}")
    if device is None and cfg.cross_compiler:
        raise TargetError(f"edgecc tune measures on this machine: target {target.name} (llvm, {cfg.cross_compiler}) "
                          "does not run here; tune over the device's RPC tracker with --device rpc://HOST:PORT/KEY")
    model = load_model(args.model, input_shapes=args.input_shape, allow_pickle=args.allow_pickle)
    mod, _ = TvmBackend()._import(model)
    db = Path(args.database) if args.database else tvm_tune.database_dir(target.name)
    t0 = time.perf_counter()
    result = tvm_tune.tune(mod, tvm_target, db, args.trials, seed=args.seed, device=device,
                           cross_compiler=cfg.cross_compiler if device is not None else "", timeout=args.timeout)
    print(f"tuned {model.name} for {target.name} on {result['measured_on']} (num-cores {result['num_cores']}): "
          f"{result['trials']} trials in {time.perf_counter() - t0:.0f}s; database {db}: "
          f"{result['records_before']} -> {result['records_after']} records (edgecc compile --backend tvm applies it)")
    return 0


def cmd_build(args) -> int:
    from edgecc.compiler.matrix import load_config, plan_cells, run_matrix

    cfg = load_config(args.config)
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None  # noqa: E731
    cells = plan_cells(split(args.models) or cfg.get("models"), split(args.targets) or cfg.get("targets"),
                       split(args.backends) or cfg.get("backends"))
    output = args.output or cfg.get("output", "build")
    summary = run_matrix(cells, output, args.jobs or cfg.get("jobs"), progress=not args.quiet and sys.stderr.isatty())
    print((Path(output) / "summary.md").read_text(), end="")
    failed = summary["counts"]["failed"]
    if failed:
        raise EdgeccError(f"{failed} of {len(cells)} cell(s) failed; see {Path(output) / 'summary.json'}")
    return 0


def cmd_targets(args) -> int:
    from edgecc.targets import get_target, list_targets

    if args.action == "show":
        if not args.name:
            raise EdgeccError("`edgecc targets show` needs a target name; see `edgecc targets`")
        t = get_target(args.name)
        print(json.dumps(t.to_dict(), indent=2, default=str))
        return 0
    targets = list_targets()
    if args.json:
        print(json.dumps({n: t.to_dict() for n, t in targets.items()}, indent=2, default=str))
        return 0
    rows = [(n, t.device, ", ".join(b + ("*" if b == t.default_backend else "") for b, c in t.backends.items()
                                     if not c.refused),
             ", ".join(f"{b} (refused)" for b, c in t.backends.items() if c.refused)) for n, t in targets.items()]
    _table(["target", "device", "backends (*default)", "refused"], rows)
    return 0


def cmd_models(args) -> int:
    from edgecc.models import count_params_and_macs, list_models

    rows = []
    for name, spec in list_models().items():
        module, inputs = spec.factory()
        params, macs = count_params_and_macs(module, inputs)
        rows.append((name, " ".join("x".join(map(str, s)) for s in spec.input_shapes), f"{params / 1e6:.3f} M",
                     f"{macs / 1e6:.1f} M", spec.description))
    if args.json:
        keys = ["name", "input", "params", "macs", "description"]
        print(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2))
        return 0
    _table(["model", "input", "params", "MACs", "description"], rows)
    return 0


def cmd_verify(args) -> int:
    from edgecc.bundle import Bundle

    bundle = Bundle.load(args.bundle, verify=False)
    n = bundle.verify()
    print(f"{bundle.path}: ok ({n} files match their sha256)")
    return 0


def cmd_run(args) -> int:
    import numpy as np

    from edgecc.bundle import Bundle
    from edgecc.errors import ModelError

    bundle = Bundle.load(args.bundle)
    if args.input:
        inputs = []
        for f in args.input:
            if not Path(f).is_file():
                raise ModelError(f"input file {f} does not exist")
            try:
                inputs.append(np.load(f, allow_pickle=False))
            except ValueError as e:
                raise ModelError(f"{f} is not a plain .npy array: {e}") from None
    else:
        inputs = bundle.reference_inputs()
    outputs = bundle.runner().run(inputs)
    paths = output_paths(args.output, len(outputs)) if args.output else []
    for i, o in enumerate(outputs):
        if paths:
            _save_npy(paths[i], o)
            print(f"output {i}: shape {list(o.shape)} {o.dtype} -> {paths[i]}")
        else:
            flat = o.ravel()
            head = ", ".join(f"{x:.5g}" for x in flat[:8]) + (", ..." if flat.size > 8 else "")
            extra = f"  argmax {int(np.argmax(o))}" if o.ndim == 2 and o.shape[0] == 1 else ""
            print(f"output {i}: shape {list(o.shape)} {o.dtype} [{head}]{extra}")
    return 0


def output_paths(output: str, n: int) -> list[Path]:
    """Where `run -o` puts n outputs: an existing folder (or a name ending in /) gets output_N.npy inside;
    otherwise NAME.npy for one output and NAME_0.npy, NAME_1.npy, ... for several."""
    if output.endswith(("/", "\\")) or Path(output).is_dir():
        return [Path(output) / f"output_{i}.npy" for i in range(n)]
    stem = output[:-4] if output.endswith(".npy") else output
    return [Path(f"{stem}.npy")] if n == 1 else [Path(f"{stem}_{i}.npy") for i in range(n)]


def _save_npy(path: Path, array) -> None:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    _write(path, buf.getvalue())


def cmd_bench(args) -> int:
    from edgecc.bundle import Bundle
    from edgecc.compiler.frontends import load_model
    from edgecc.runtime.baselines import BASELINES, run_baselines
    from edgecc.runtime.devices import bench_on_device, describe, parse_device
    from edgecc.runtime.report import environment, failed_record, make_report, run_record, to_markdown

    device = parse_device(args.device)
    names = [n.strip() for n in args.baselines.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise EdgeccError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    bundles = [Bundle.load(p) for p in args.bundle]  # all verified before any is timed
    remote = device is not None and device.kind in ("ssh", "rpc")
    runs, rows, errors = [], [], []
    with _progress(args, "benchmarking", len(bundles)) as step:
        for bundle in bundles:
            dev = describe(device, bundle)
            step(f"{bundle.path.name} on {dev['spec']}")
            try:
                timing = bench_on_device(bundle, device, warmup=args.warmup, iters=args.iters, threads=args.threads,
                                         ssh=_ssh_options(args), chunk=args.chunk or (10 if remote else 0),
                                         timeout=args.timeout, retries=args.retries)
            except EdgeccError as e:
                if len(bundles) == 1:
                    raise
                errors.append(e)
                runs.append(failed_record(bundle, dev, str(e)))
                continue
            base = run_baselines(bundle, names, dev["kind"], args.warmup, args.iters, args.threads,
                                 timing.stats()["p50"] if timing.unit == "ms" else None,
                                 load_model=load_model) if names else []
            runs.append(run_record(bundle, timing, dev, base))
    doc = make_report(runs, environment(), args.warmup, args.iters)
    first = bundles[0].path.resolve()  # `bench .` names its report after the folder, not ''
    out = Path(args.json_out) if args.json_out else (
        first.with_name(first.name + ".bench.json") if len(bundles) == 1 else first.parent / "bench.json")
    _write(out, json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        _write(args.markdown, to_markdown(doc))
    if args.html:
        from edgecc.runtime.report_html import to_html

        _write(args.html, to_html(doc))
    if args.format == "json":
        print(json.dumps(doc))
    elif args.format == "markdown":
        print(to_markdown(doc), end="")
    else:
        for r in runs:
            t = r["timing"]
            if not t:
                rows.append((r["model"], r["target"], r["backend"], r["device"]["spec"], "-", "-", "-", "-", "-", "-",
                             "0", f"failed: {r['reason']}"))
                continue
            s = t["stats"]
            fmt = (lambda x: f"{x:.3f}") if t["unit"] == "ms" else (lambda x: f"{x:,.0f}")
            status = _check_text(r["validation"]) + (f"; PARTIAL: {t['partial_reason']}" if t["partial"] else "")
            rows.append((r["model"], r["target"], r["backend"], r["device"]["spec"], t["unit"], fmt(s["min"]),
                         fmt(s["p50"]), fmt(s["p90"]), fmt(s["p99"]), fmt(s["mean"]), str(s["n"]), status))
            for b in r["baselines"]:
                if b["status"] == "ok":
                    bs = b["timing"]["stats"]
                    rows.append((f"  {b['name']}", "", "", r["device"]["spec"], "ms", fmt(bs["min"]), fmt(bs["p50"]),
                                 fmt(bs["p90"]), fmt(bs["p99"]), fmt(bs["mean"]), str(bs["n"]),
                                 f"edgecc {b['speedup']:.2f}x faster" if b["speedup"] and b["speedup"] >= 1 else
                                 f"edgecc {1 / b['speedup']:.2f}x slower" if b["speedup"] else ""))
                else:
                    rows.append((f"  {b['name']}", "", "", r["device"]["spec"], *[""] * 7, b["reason"]))
        _table(["model", "target", "backend", "device", "unit", "min", "p50", "p90", "p99", "mean", "n",
                "vs reference"], rows)
        methods = sorted({r["timing"]["method"] for r in runs if r["timing"]})
        print(f"method: {'; '.join(methods)}; warm-up {args.warmup}, iterations {args.iters}; raw samples -> {out}")
    if errors:
        raise EdgeccError(f"{len(errors)} of {len(bundles)} bundle(s) failed: {errors[0]} (report: {out})")
    return 0


def cmd_deploy(args) -> int:
    from edgecc.bundle import Bundle
    from edgecc.runtime.deploy import deploy
    from edgecc.runtime.devices import parse_device

    device = parse_device(args.device)
    bundle = Bundle.load(args.bundle)
    done = deploy(bundle, device, _ssh_options(args), timeout=args.timeout, log=_log(args))
    if args.json:
        print(json.dumps(done, indent=2))
        return 0
    err = done.get("max_abs_error")
    check = f"; one inference matches the reference (max abs err {err:.1e})" if err is not None else ""
    extra = f" (runtime {done['runtime']} in {done['venv']}: {done['install']}; {len(done['files_copied'])} file(s) " \
            f"copied, {done['files_unchanged']} unchanged)" if "runtime" in done else ""
    ran = f" (ran in {done['where']})" if done.get("where") else ""
    print(f"{done.get('artifact', done['location'])}{extra}{ran}{check}")
    return 0


def cmd_report(args) -> int:
    from edgecc.runtime.report import compare, load_report, load_reports, parse_percent, to_markdown

    if args.paths[0] == "compare":
        if len(args.paths) != 3:
            from edgecc.errors import UsageError

            raise UsageError("usage: edgecc report compare BASE.json NEW.json [--max-regression 10%]")
        limit = parse_percent(args.max_regression)
        failures, lines = compare(load_report(Path(args.paths[1])), load_report(Path(args.paths[2])), limit,
                                  args.max_error_change)
        for line in lines:
            print(f"ok    {line}")
        for line in failures:
            print(f"FAIL  {line}")
        if failures:
            from edgecc.errors import RegressionError

            raise RegressionError(f"{len(failures)} regression(s) beyond the gate (max regression {limit:.0%}): "
                              f"{failures[0]}")
        print(f"no regression beyond {limit:.0%} in {len(lines)} run(s)")
        return 0
    from edgecc.runtime.report_html import to_html

    doc = load_reports(args.paths)
    if args.json_out:
        _write(args.json_out, json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        md = to_markdown(doc)
        if args.markdown == "-":
            print(md, end="")
        else:
            _write(args.markdown, md)
    out = Path(args.output or "report.html")
    _write(out, to_html(doc))
    if args.markdown != "-":
        print(f"{out}  ({len(doc['runs'])} run(s) from {len(doc['sources'])} report(s))")
    return 0


def _write(path, data: str | bytes) -> None:
    """Write an output file whole (temp file + rename), creating its folder; a one-line error when the place is a
    folder or cannot be written, and no temp file left behind."""
    from edgecc.errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name to write (e.g. {path / 'report.html'})")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        tmp.replace(path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}; choose another path") from None
    finally:
        tmp.unlink(missing_ok=True)


class _progress:
    """A rich progress bar on a terminal; nothing in CI logs or with --quiet."""

    def __init__(self, args, what: str, total: int):
        self.on = not args.quiet and sys.stderr.isatty() and getattr(args, "format", "table") == "table"
        self.what, self.total = what, total

    def __enter__(self):
        if not self.on:
            return lambda desc: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("[dim]edgecc:[/dim] {task.description}"), BarColumn(), TimeElapsedColumn(),
                          transient=True)
        self.p.__enter__()
        task = self.p.add_task(self.what, total=self.total)
        first = [True]

        def step(desc):
            if not first[0]:
                self.p.advance(task)
            first[0] = False
            self.p.update(task, description=f"{self.what} {desc}")

        return step

    def __exit__(self, *exc):
        if self.on:
            self.p.__exit__(*exc)
        return False


def _check_text(v: dict) -> str:
    if v.get("status") != "passed":
        return v.get("status", "?")
    return f"max abs err {v['max_abs_error']:.1e}"


def _table(header, rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, box=None, pad_edge=False)
    for r in rows:
        table.add_row(*[str(c) for c in r])
    Console(width=160).print(table)


def cmd_trtexec_report(args) -> int:
    from edgecc.runtime.trtexec_report import print_report, read_report

    report = read_report(args.log, args.times, args.profile)
    if args.json_out:
        _write(args.json_out, json.dumps(report, indent=2) + "\n")
    print_report(report, args.layers)
    return 0


COMMANDS = {"compile": cmd_compile, "build": cmd_build, "tune": cmd_tune, "targets": cmd_targets, "models": cmd_models,
            "verify": cmd_verify, "run": cmd_run, "bench": cmd_bench, "deploy": cmd_deploy, "report": cmd_report,
            "trtexec-report": cmd_trtexec_report}
