"""The argument parser of `edgecc`: every command's arguments, range-checked types, one-line usage errors."""

from __future__ import annotations

import argparse
import math

from edgecc.compiler.cli.cascade_command import add_cascade_parser
from edgecc.compiler.cli.search_command import add_search_parser
from edgecc.compiler.cli.split_command import add_split_parser

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


def _finite(what: str, ok, requirement: str):
    """argparse type: a finite float for which ok(x) holds; errors name `what` and the `requirement`."""
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(x) or not ok(x):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return x
    return parse


_seconds = _finite("a number of seconds", lambda t: t > 0, "a number of seconds above 0")
_non_negative = _finite("a number", lambda x: x >= 0, "a finite number, 0 or more")


def _shard(text: str):
    from edgecc.compiler.matrix_shards import parse_shard
    from edgecc.errors import UsageError

    try:
        return parse_shard(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--shard ")) from None


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error of every other edgecc failure (exit 2, usage behind --help)."""

    def error(self, message):
        command = self.prog.removeprefix("edgecc").strip()
        self.exit(2, f"edgecc: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _input_range(text: str):
    from edgecc.compiler.inputs import parse_input_range
    from edgecc.errors import UsageError

    try:
        return parse_input_range(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"--input-range {text!r}: ")) from None


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

    _add_compile(sub)
    _add_tune(sub)
    _add_build(sub)
    _add_listings(sub)
    _add_bundle(sub)
    _add_bench(sub)
    _add_deploy(sub)
    _add_report(sub)
    add_split_parser(sub, _shape)
    add_cascade_parser(sub)
    add_search_parser(sub)
    return p


def _add_compile(sub) -> None:
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
    c.add_argument("--squeeze", default="", metavar="STAGES|FILE.toml",
                   help="squeeze pipeline before compiling, in order: prune=RATIO, lowrank=ENERGY, distill, int8 "
                   "(e.g. prune=0.5,distill,int8; options as :KEY=VALUE), or a TOML file with a [squeeze] section")
    c.add_argument("--squeeze-data", default="", metavar="DATASET|DIR",
                   help="data of the squeeze pipeline (distillation, Taylor importance, int8 calibration): a "
                   "dataset name (digits) or a folder of unlabelled .npy inputs")
    c.add_argument("--profile", action="store_true", help="print the bundle's per-layer profile after compiling "
                   "(as `edgecc profile`)")
    c.add_argument("--json", action="store_true", help="print the manifest as JSON")
    c.add_argument("--force", action="store_true", help="replace the -o folder even if it is not an edgecc bundle "
                   "(its contents are deleted)")
    c.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32",
                   help="float arithmetic where the target and backend do it; validated at a tolerance scaled for it")
    c.add_argument("--input-range", action="append", default=[], type=_input_range, metavar="[NAME=]LOW:HIGH",
                   help="example input values: uniform floats in [LOW, HIGH), integers in [LOW, HIGH]; e.g. 0:1 "
                   "for images, input_ids=0:30521 for token ids (repeatable, one per input name)")
    _add_validation(c)


def _add_validation(p) -> None:
    p.add_argument("--validate-with", default="", metavar="DIR|FILE.npy|FILE.npz|DATASET",
                   help="validate on these samples (a folder of .npy/.npz or ONNX test_data_set_*, an .npy of N "
                   "samples, an .npz keyed by input name, or a dataset name: digits) instead of one example input")
    p.add_argument("--validate-samples", type=_int_at_least(1), default=8, metavar="N",
                   help="how many samples --validate-with gives validation (default 8)")



def _add_tune(sub) -> None:
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
    tu.add_argument("--work-dir", help="where measured candidates are kept until merged (default: "
                    "<database>/../.edgecc-tune/<run>/); the same command after a stop resumes from them")
    tu.add_argument("--allow-pickle", action="store_true", help="allow loading a pickled model (runs its code!)")



def _add_build(sub) -> None:
    m = sub.add_parser("build", help="build a models x targets x backends matrix (CI); writes summary.json/.md")
    m.add_argument("--config", help="TOML with models / targets / backends / jobs / output")
    m.add_argument("--models", help="comma-separated (default: the zoo; tiny models only on MCU targets)")
    m.add_argument("--targets", help="comma-separated (default: every target)")
    m.add_argument("--backends", help="comma-separated (default: every implemented backend of each target)")
    m.add_argument("-j", "--jobs", type=_int_at_least(1), help="parallel processes (default: CPU count)")
    m.add_argument("-o", "--output", help="folder for bundles and the summary (default: build)")
    _add_validation(m)
    m.add_argument("merge", nargs="*", metavar="merge SUMMARY.json", help="`edgecc build merge SUMMARY.json...`: "
                   "join the summaries of the --shard jobs into one (in -o); fails if a cell failed or is missing")
    m.add_argument("--shard", type=_shard, metavar="K/N", help="build only shard K of N (a deterministic part of "
                   "the matrix, balanced by expected cost)")
    m.add_argument("--costs", metavar="SUMMARY.json", help="--shard: balance by the wall seconds of this previous "
                   "summary (default: by model size)")
    m.add_argument("--executor", default="local", metavar="local|ray|ray://HOST:PORT", help="where cells build: "
                   "local processes, or Ray tasks (ray: RAY_ADDRESS or a local cluster; ray://HOST:PORT: the head)")
    m.add_argument("--cpus-per-cell", type=_int_at_least(1), default=1, help="Ray: CPUs each cell's task declares")
    m.add_argument("--ray-timeout", type=_seconds, default=30, help="Ray: seconds to reach the cluster")
    m.add_argument("--ray-transfer", choices=["auto", "tar"], default="auto", help="Ray: how bundles come back "
                   "(auto: a path where a node shares the output folder, else a tar stream; tar: always a stream)")



def _add_listings(sub) -> None:
    t = sub.add_parser("targets", help="list targets, or `targets show NAME`")
    t.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    t.add_argument("name", nargs="?")
    t.add_argument("--json", action="store_true")

    m = sub.add_parser("models", help="list the model zoo")
    m.add_argument("--json", action="store_true")



def _add_bundle(sub) -> None:
    pr = sub.add_parser("profile", help="per-layer MACs, parameters, activation bytes of a bundle's model and the "
                        "measured share of time of each kernel on its target")
    pr.add_argument("bundle")
    pr.add_argument("--json", dest="json_out", help="also write the profile as JSON here")
    pr.add_argument("--top", type=_int_at_least(1), default=0, help="show only the N costliest layers")

    v = sub.add_parser("verify", help="check every file of a bundle against its manifest")
    v.add_argument("bundle")

    r = sub.add_parser("run", help="run a bundle once and print/save its outputs")
    r.add_argument("bundle")
    r.add_argument("--input", "-i", action="append", help=".npy input (repeat per input; default: the reference)")
    r.add_argument("--output", "-o", help="save the output to this .npy; with several outputs NAME_0.npy, "
                   "NAME_1.npy, ...; an existing folder (or one ending in /) gets output_N.npy inside")



def _add_bench(sub) -> None:
    b = sub.add_parser("bench", help="time bundles (each in its own process): warm-up + N iterations")
    b.add_argument("bundle", nargs="+")
    b.add_argument("--warmup", type=_int_at_least(0), default=5)
    b.add_argument("--iters", "-n", type=_int_at_least(1), default=50)
    b.add_argument("--threads", type=_int_at_least(0), default=0, help="runtime threads (default: the runtime's)")
    b.add_argument("--json", dest="json_out", help="write the report JSON (schema edgecc.report/1) here (default: "
                   "<bundle>.bench.json for one bundle, bench.json beside the first for several)")
    b.add_argument("--device", "-d", help="host | qemu | ssh://user@host[:port] | rpc://tracker:port/key (default: "
                   "where each bundle's runner runs from here)")
    b.add_argument("--baselines", default="", help="comma-separated: ort,openvino,executorch,torch (ONNX "
                   "Runtime, OpenVINO, ExecuTorch with XNNPACK, PyTorch eager; same device and threads, own "
                   "processes; the report names the fastest)")
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



def _add_deploy(sub) -> None:
    d = sub.add_parser("deploy", help="copy a bundle to a device, install its runtime, check one inference")
    d.add_argument("bundle")
    d.add_argument("--device", "-d", required=True, help="ssh://user@host[:port] | qemu | host | board[:NAME]")
    d.add_argument("--timeout", type=_seconds, default=900)
    d.add_argument("--json", action="store_true", help="print what was done as JSON")
    _ssh_args(d)



def _add_report(sub) -> None:
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


