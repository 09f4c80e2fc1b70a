"""IREE: torch.export → torch-mlir FX importer (linalg-on-tensors) → iree-compile → .vmfb.

ONNX sources go through iree-import-onnx instead of torch-mlir. Flags come from the target file; the
`host` CPU is resolved to its LLVM name at compile time and recorded, since such an artifact only runs on a
CPU with the same features.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgecc.compiler.artifact import Artifact, CompileOptions
from edgecc.compiler.backends import iree_layout, register_backend
from edgecc.errors import CannotRunHere, EdgeccError, ModelError, TargetError, ToolError, UnsupportedOpError, require
from edgecc.targets.host_cpu import cpu_isa_flags, host_cpu_name
from edgecc.tools import find_tool, package_version, repro_line, run_tool

_ILLEGAL_OP = re.compile(r"failed to legalize (?:operation|unresolved materialization)[^']*'([\w.]+)'")
_TORCH_OP = re.compile(r"'?torch\.(aten\.[\w.]+|prims\.[\w.]+)")


@register_backend("iree")
class IreeBackend:
    # --option keys (the target file's [backends.iree] may set them too); --flag goes to iree-compile
    OPTIONS = {
        "nhwc_rewrite": "1/0: NHWC convolution rewrite of the imported module",
        "nhwc_graph": "1/0: channels-last graph rewrite at the ATen level",
        "conv_data_tiling": "1/0/auto: IREE's convolution data tiling",
        "conv_data_tiling_min_channels": "convolutions with fewer input channels stay direct",
        "space_to_depth": "1/0: the stem as a space-to-depth convolution",
        "max_pool_slices": "1/0: max pools as maxima of strided slices",
        "matmul_vector_n": "0 or a power of two 8..64: vector N tile of default-tiled matmuls",
        "conv_vector_n": "0 or a power of two 8..64: vector N tile of direct convolutions",
    }
    TAKES_FLAGS = True

    def compile(self, model, target, workdir: Path, options: CompileOptions) -> Artifact:
        cfg = target.backend("iree")
        nhwc_rewrite = _bool_option(options.options, "nhwc_rewrite", bool(cfg.options.get("nhwc_rewrite")))
        nhwc_graph = _bool_option(options.options, "nhwc_graph", bool(cfg.options.get("nhwc_graph")))
        # options checked before the import; `auto` is decided on the imported module
        tiling_mode = _conv_data_tiling_mode(cfg.options, options.options)
        space_to_depth = _bool_option(options.options, "space_to_depth", None)
        max_pool_slices = _bool_option(options.options, "max_pool_slices", None)
        vector_n = _vector_n_option(options.options, cfg.options, "matmul_vector_n")
        conv_vector_n = _vector_n_option(options.options, cfg.options, "conv_vector_n")
        min_channels = _count_option(options.options, cfg.options, "conv_data_tiling_min_channels")
        work = workdir / "work"
        work.mkdir(exist_ok=True)
        mlir = work / "model.mlir"
        calls, nhwc_graph_stats = [], None
        if model.kind == "onnx":
            argv = ["iree-import-onnx", str(model.onnx_path), "-o", str(mlir)]
            run_tool(argv, cwd=workdir)
            calls.append(repro_line([find_tool("iree-import-onnx")] + argv[1:]))
        else:
            call, nhwc_graph_stats = self._import_torch(model, mlir, nhwc_graph)
            calls.append(call)
        layout_rewrites = None
        if nhwc_rewrite:
            layout_rewrites = _layout_pass("rewrite_file", mlir, calls, "depthwise/pooling ops to NHWC")
        flags = list(cfg.flags)
        info_tiling = None
        if tiling_mode is not None:
            on, why = _conv_data_tiling(mlir, tiling_mode)
            info_tiling = {"enabled": on, "why": why}
            if on:
                flags += list(cfg.options.get("conv_data_tiling_flags", []))
            elif _rewritten(nhwc_graph_stats):
                # the pad fusion is for the channels-last graph's NHWC pads; iree-compile crashed with it on
                # the int8 QDQ models (ONNX import), which do not go through that rewrite
                flags += list(cfg.options.get("conv_data_tiling_off_flags", []))
            few = iree_layout.few_channel_conv_count(mlir.read_text(), min_channels) if on and min_channels else 0
            if space_to_depth is None:
                space_to_depth = on and not few  # by default together with data tiling, unless those stay direct
            if space_to_depth:
                info_tiling["space_to_depth_convs"] = _layout_pass("space_to_depth_file", mlir, calls,
                                                                   "few-channel strided convs")
            if max_pool_slices is None:
                max_pool_slices = on  # data tiling gives pools an untiled encoding: a serial copy of the input
            if max_pool_slices and nhwc_rewrite:  # acts on the NHWC pools rewrite_file makes
                info_tiling["max_pools_as_slices"] = _layout_pass("max_pool_slices_file", mlir, calls,
                                                                  "max pools as strided-slice maxima")
            if few and not space_to_depth:
                flags = _channels_last_first(mlir, flags, workdir, calls)
                info_tiling["direct_few_channel_convs"] = _layout_pass(
                    "hint_conv_data_tiling_file", mlir, calls, "few-channel convolutions left direct",
                    min_channels=min_channels)
        matmul_tiling = None
        # Not with convolution data tiling on: hinted matmuls made IREE pick other tiles for the packed 3x3
        # convolutions, which then ran slower (ResNet-50 50.0 -> 53.3 ms, one thread).
        if nhwc_graph_stats is not None and cfg.options.get("matmul_data_tiling_flags") \
                and not (info_tiling or {}).get("enabled"):
            # few-row matmuls do better with wide vector tiles than data-tiled (iree_layout.FEW_ROWS)
            matmul_tiling = _layout_pass("hint_matmul_data_tiling_file", mlir, calls, "long-reduction matmuls",
                                         wide_n=vector_n)
            if matmul_tiling:
                flags += list(cfg.options["matmul_data_tiling_flags"])
        flags += list(options.extra_flags)
        argv = ["iree-compile", str(mlir), *flags, "-o", str(workdir / "model.vmfb")]
        matmul_tiles = conv_tiles = None
        try:
            configs = None  # IREE's tile configurations of the module as it is now
            if vector_n and iree_layout.plain_matmul_count(mlir.read_text()):
                # IREE's own tiles, of which the plain matmuls then get a wider vector N tile (as compilation_info)
                configs = _configurations(mlir, flags, "model.configs.mlir", workdir, calls)
                matmul_tiles = {"vector_n": vector_n, "widened": _layout_pass(
                    "widen_matmul_tiles_file", mlir, calls, "matmuls", config_path=configs, vector_n=vector_n)}
                if matmul_tiles["widened"]:
                    configs = None  # the module changed
            if conv_vector_n:
                # the direct convolutions' tiles are widened in the configurations, and the build goes on from there
                configs = configs or _configurations(mlir, flags, "model.tiles.mlir", workdir, calls)
                conv_tiles = {"vector_n": conv_vector_n, "widened": _layout_pass(
                    "widen_conv_tiles_file", configs, calls, "direct convolutions", vector_n=conv_vector_n)}
                if conv_tiles["widened"]:
                    argv = ["iree-compile", str(configs), "--compile-from=executable-configurations", *flags,
                            "-o", str(workdir / "model.vmfb")]
            run_tool(argv, cwd=workdir, timeout=3600)
        except Exception as e:
            _raise_if_unsupported(str(getattr(e, "stderr", "")) or str(e), "iree")
            raise
        calls.append(repro_line([find_tool("iree-compile")] + argv[1:]))
        info = {"driver": cfg.driver or "local-task", "function": _entry_function(mlir),
                "device_runtime": f"pip install iree-base-runtime=={package_version('iree-base-runtime')}"}
        if "--iree-llvmcpu-target-cpu=host" in flags:
            # target-cpu=host code uses every ISA extension of this CPU: record them, runners check them
            info["host_cpu"] = host_cpu_name()
            info["host_cpu_isa"] = cpu_isa_flags()
        if layout_rewrites is not None:
            info["nhwc_rewrites"] = layout_rewrites
        if nhwc_graph_stats is not None:
            info["nhwc_graph"] = nhwc_graph_stats
        if matmul_tiling is not None:
            info["matmul_data_tiling_hints"] = matmul_tiling
        if matmul_tiles is not None:
            info["matmul_vector_tiles"] = matmul_tiles
        if conv_tiles is not None:
            info["conv_vector_tiles"] = conv_tiles
        if info_tiling is not None:
            info["conv_data_tiling"] = info_tiling
        if cfg.options.get("note"):
            info["note"] = cfg.options["note"]
        files = ["model.vmfb"]
        if cfg.options.get("check_variant_flags"):
            # A second build whose numerics can be checked here (e.g. a generic Vulkan profile on lavapipe).
            vflags = list(cfg.options["check_variant_flags"]) + list(options.extra_flags)
            vargv = ["iree-compile", str(mlir), *vflags, "-o", str(workdir / "model.check.vmfb")]
            run_tool(vargv, cwd=workdir, timeout=3600)
            calls.append(repro_line([find_tool("iree-compile")] + vargv[1:]))
            files.append("model.check.vmfb")
            info["check_variant"] = {"file": "model.check.vmfb", "flags": vflags,
                                     "driver": cfg.options.get("check_variant_driver", info["driver"]),
                                     "device": cfg.options.get("check_variant_device", "")}
        if info["driver"] == "cuda":
            info["cuda"] = inspect_cuda_vmfb(workdir / "model.vmfb", _flag_value(flags, "--iree-cuda-target"))
        files += write_device_scripts(workdir, info, len(model.example_inputs), len(model.output_names))
        return Artifact(files=files, entry="model.vmfb", calls=calls, flags=flags, info=info)

    def _import_torch(self, model, mlir: Path, nhwc_graph: bool = False) -> tuple[str, dict | None]:
        """(repro line, channels-last rewrite stats or None): the model as linalg-on-tensors in `mlir`."""
        fx = require("torch_mlir.fx", "torch-mlir", "the IREE backend (torch-mlir FX importer)")
        ep, stats = model.exported_program(), None
        if nhwc_graph:
            import torch

            from edgecc.compiler.channels_last import channels_last

            ep, stats = channels_last(ep, tuple(torch.from_numpy(a) for a in model.example_inputs))
        diagnostics: list[str] = []
        try:
            module = fx.export_and_import(ep, output_type="linalg-on-tensors", func_name="main",
                                          fx_importer=_importer(diagnostics))
        except Exception as e:
            op = _failing_torch_op(diagnostics, ep)
            if op:
                raise UnsupportedOpError(op, "iree", suggestion="try --backend tvm",
                                         detail="torch-mlir has no linalg lowering for it") from None
            first = (diagnostics or str(e).strip().splitlines() or ["unknown error"])[0]
            raise ModelError(f"torch-mlir could not import {model.name}: {first[:300]}") from e
        with open(mlir, "w") as f:
            module.operation.print(file=f, large_elements_limit=None, enable_debug_info=False)
        source = f"torch.export.export(<{model.name}>, inputs)"
        if _rewritten(stats):
            source = f"edgecc.compiler.channels_last.channels_last({source}, inputs)"
        return (f"torch_mlir.fx.export_and_import({source}, output_type='linalg-on-tensors', func_name='main') "
                f"> {mlir.name}"), stats

    def runner(self, bundle):
        """Where this bundle runs from here: the host CPU, qemu-aarch64, or a Vulkan check variant on lavapipe."""
        from edgecc.runtime.local import IreeLocalRunner, IreeToolRunner

        info, target = bundle.manifest["artifact"]["info"], bundle.manifest["target"]
        arch = target["triple"].split("-")[0]
        if info["driver"] in ("local-task", "local-sync"):
            if arch == "x86_64":
                return IreeLocalRunner(bundle)
            if arch == "aarch64":
                from edgecc.runtime.qemu_user import iree_qemu_runner

                return iree_qemu_runner(bundle)
            raise CannotRunHere(f"no emulator for {target['triple']} here")
        if info["driver"] == "cuda" and arch == "x86_64" and _iree_device_exists("cuda"):
            return IreeLocalRunner(bundle)  # a CUDA GPU on this machine (tests/device)
        variant = info.get("check_variant")
        if variant:
            runner = IreeToolRunner(bundle, bundle.path / variant["file"], variant["driver"],
                                    where=variant["device"] or variant["driver"])
            accel = target.get("accelerator") or {}
            runner.note = (f"checked: {variant['file']}; {bundle.manifest['artifact']['entry']} "
                           f"({accel.get('arch', '')}) numerics not checked: needs {accel.get('name') or 'the device'}")
            return runner
        accel = target.get("accelerator") or {}
        raise CannotRunHere(f"needs {accel.get('name') or accel.get('arch') or info['driver']} "
                            f"({info['driver']} device)")

    def versions(self) -> dict[str, str]:
        return {p: package_version(p) for p in ("iree-base-compiler", "iree-base-runtime", "torch-mlir", "torch")}


def _iree_device_exists(driver: str) -> bool:
    """Whether this machine's IREE runtime sees a device of that driver (e.g. a CUDA GPU); no IREE tools: no."""
    from edgecc.runtime.local import iree_device_available

    try:
        return iree_device_available(driver)
    except EdgeccError:
        return False


def _layout_pass(name: str, mlir: Path, calls: list[str], what: str, **kwargs) -> int:
    """Run iree_layout.`name` on the module file in place (with `kwargs`), record its repro line in `calls`; how
    many ops it rewrote (`what`)."""
    n = getattr(iree_layout, name)(mlir, **kwargs)
    args = [mlir.name] + [f"{k}={v.name if isinstance(v, Path) else v}" for k, v in kwargs.items()]
    calls.append(f"edgecc.compiler.backends.iree_layout.{name}({', '.join(args)})  # {n} {what}")
    return n


def _configurations(mlir: Path, flags: list[str], name: str, workdir: Path, calls: list[str]) -> Path:
    """The tiles iree-compile (same flags) picks for each dispatch: its `--compile-to=executable-configurations`
    output, written next to the module as `name`."""
    configs = mlir.with_name(name)
    argv = ["iree-compile", str(mlir), *flags, "--compile-to=executable-configurations", "-o", str(configs)]
    run_tool(argv, cwd=workdir, timeout=3600)
    calls.append(repro_line([find_tool("iree-compile")] + argv[1:]))
    return configs


def _vector_n_option(user_opts: dict, target_opts: dict, key: str) -> int:
    """`matmul_vector_n` / `conv_vector_n`, the user's over the target's: 0 (off) or the vector N tile, in elements,
    for IREE's default-tiled f32 matmuls / direct convolutions."""
    value = user_opts.get(key, target_opts.get(key, 0))
    try:
        n = int(str(value))
    except ValueError:
        n = -1
    if n != 0 and not (8 <= n <= 64 and n & (n - 1) == 0):
        raise TargetError(f"--option {key}={value}: expected 0 (off) or a power of two from 8 to 64")
    return n


def _count_option(user_opts: dict, target_opts: dict, key: str) -> int:
    """A non-negative integer option, the user's over the target's (0 when neither sets it)."""
    value = user_opts.get(key, target_opts.get(key, 0))
    if not str(value).isdigit():
        raise TargetError(f"--option {key}={value}: expected a whole number of channels, 0 or more")
    return int(str(value))


_PREPROCESSING = "--iree-preprocessing-pass-pipeline="


def _channels_last_first(mlir: Path, flags: list[str], workdir: Path, calls: list[str]) -> list[str]:
    """Run the target's IREE preprocessing pipeline (the channels-last convolution pass) on the module file with
    iree-opt, so that the convolutions can be rewritten in the NHWC form IREE compiles; the flags without it."""
    pipeline = next((f[len(_PREPROCESSING):] for f in flags if f.startswith(_PREPROCESSING)), None)
    if pipeline is None:
        return flags
    # iree-compile nests it on util.func (its input is already converted); the imported module has func.func
    out = mlir.with_name("model.channels_last.mlir")  # not in place: iree-opt reads its input mapped
    argv = ["iree-opt", f"--pass-pipeline={pipeline.replace('util.func(', 'func.func(')}", str(mlir), "-o", str(out)]
    run_tool(argv, cwd=workdir, timeout=3600)
    out.replace(mlir)
    calls.append(repro_line([find_tool("iree-opt")] + argv[1:]) + f" && mv {out.name} {mlir.name}")
    return [f for f in flags if not f.startswith(_PREPROCESSING)]


def _rewritten(nhwc_graph_stats: dict | None) -> bool:
    """Whether the channels-last graph rewrite ran and was kept (its stats, not a `skipped` reason)."""
    return bool(nhwc_graph_stats) and "skipped" not in nhwc_graph_stats


def _conv_data_tiling_mode(target_opts: dict, user_opts: dict) -> str | None:
    """`conv_data_tiling`, the user's over the target's, lower-cased and checked; None for targets without it."""
    value = user_opts.get("conv_data_tiling", target_opts.get("conv_data_tiling", ""))
    if str(value).lower() not in ("", "auto"):
        _bool_option({"conv_data_tiling": value}, "conv_data_tiling", False, also="auto")
    return str(value).lower() or None


def _conv_data_tiling(mlir: Path, mode: str) -> tuple[bool, str]:
    """(on, why). `auto` turns IREE's convolution data tiling on when dense k>1 convolutions carry at least a
    third of the model's convolution MACs (ResNet-18 99%, ResNet-50 48%), and off when depthwise/1x1 convolutions
    dominate (MobileNetV2: 4%), where packing costs more than it saves (measured on the host; see
    targets/host.toml)."""
    if mode != "auto":
        return mode in _TRUE, f"conv_data_tiling={mode}"
    share = iree_layout.spatial_conv_share(mlir.read_text())
    return share >= 1 / 3, f"auto: dense k>1 convolutions do {share:.0%} of the convolution MACs"


_TRUE, _FALSE = ("1", "true", "on"), ("0", "false", "off")


def _bool_option(opts: dict, key: str, default: bool | None, also: str = "") -> bool | None:
    """opts[key] as a bool (default when absent); a one-line error for anything else (`also`: another value the
    caller accepts, named in that error)."""
    if key not in opts:
        return default
    value = str(opts[key]).lower()
    if value not in _TRUE + _FALSE:
        raise TargetError(f"--option {key}={opts[key]}: expected 1/0 (true/false){' or ' + also if also else ''}")
    return value in _TRUE


def _flag_value(flags: list[str], name: str) -> str:
    return next((f.split("=", 1)[1] for f in flags if f.startswith(name + "=")), "")


_PTX_TARGET = re.compile(rb"\.target (sm_\d+)")


def inspect_cuda_vmfb(vmfb: Path, arch: str) -> dict:
    """Check the PTX embedded in a CUDA vmfb: its .target is the requested arch and ptxas assembles it."""
    import zipfile

    ptx_blobs = []
    with zipfile.ZipFile(vmfb) as z:
        for name in z.namelist():
            data = z.read(name)
            start = data.find(b"//\n// Generated by LLVM NVPTX")
            start = data.find(b".version") if start < 0 else start
            if start >= 0 and _PTX_TARGET.search(data):
                end = data.find(b"\0", start)
                ptx_blobs.append(data[start:end if end > 0 else len(data)])
    if not ptx_blobs:
        raise ToolError(f"{vmfb.name}: no PTX found in the CUDA executable")
    targets = sorted({m.decode() for blob in ptx_blobs for m in _PTX_TARGET.findall(blob)})
    if arch and targets != [arch]:
        raise ToolError(f"{vmfb.name}: PTX targets {targets}, expected {arch}")
    result = {"ptx_targets": targets, "ptx_bytes": sum(map(len, ptx_blobs))}
    try:
        ptxas = find_tool("ptxas")
    except ToolError:
        return {**result, "ptxas": "not run: ptxas not installed"}
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for i, blob in enumerate(ptx_blobs):
            src = Path(d) / f"k{i}.ptx"
            src.write_bytes(blob)
            run_tool([ptxas, f"-arch={targets[0]}", str(src), "-o", str(Path(d) / f"k{i}.cubin")], timeout=600)
    return {**result, "ptxas": f"assembled for {targets[0]} by {ptxas}"}


def write_device_scripts(workdir: Path, info: dict, n_inputs: int, n_outputs: int) -> list[str]:
    """run.sh / bench.sh for the device, from runtime/scripts templates."""
    from edgecc.runtime.device_scripts import default_inputs, render_scripts

    subst = {"@IREE_VERSION@": package_version("iree-base-runtime"), "@NUM_OUTPUTS@": str(n_outputs),
             "@DEVICE@": info["driver"], "@MODULE@": "model.vmfb", "@FUNCTION@": info["function"],
             "@DEFAULT_INPUTS@": default_inputs(n_inputs)}
    return render_scripts(workdir, {"iree_run.sh": "run.sh", "iree_bench.sh": "bench.sh"}, subst)


def _entry_function(mlir: Path) -> str:
    """The public function of the imported module (`main` from torch-mlir, the graph name from ONNX)."""
    with open(mlir) as f:
        for line in f:
            m = re.search(r"func\.func @([\w$.]+)\(", line)
            if m and "private" not in line.split("@")[0]:
                return m.group(1)
    return "main"


def _importer(diagnostics: list[str]):
    """An FxImporter whose MLIR context records diagnostics (torch-mlir prints them to stderr otherwise)."""
    from torch_mlir import ir
    from torch_mlir.dialects import torch as torch_d
    from torch_mlir.extras.fx_importer import FxImporter

    context = ir.Context()
    torch_d.register_dialect(context)

    def handler(d):
        diagnostics.append(d.message)
        return True

    context.attach_diagnostic_handler(handler)
    return FxImporter(context=context)


_OPERATOR_NAME = re.compile(r'name = "torch\.(aten\.[\w.]+)"')
_LEGALIZE = re.compile(r"failed to legalize operation '(torch\.[\w.]+)'")
_SSA_DEF = re.compile(r"^\s*(%[\w.+-]+) = (torch\.constant\.\w+) (.+)$")


def _failing_torch_op(diagnostics: list[str], ep) -> str:
    """Name the aten op behind a failed torch → linalg lowering. The diagnostic may name the op itself, or
    only a constant left behind because its consumer failed to lower: then find that consumer in torch IR."""
    text = "\n".join(diagnostics)
    if m := _OPERATOR_NAME.search(text):
        return m.group(1)
    m = _LEGALIZE.search(text)
    if not m:
        return ""
    op = m.group(1)
    if not op.startswith("torch.constant."):
        return op.removeprefix("torch.")
    value = re.search(r"value = ([^:}]+)", text)
    from torch_mlir import fx

    ir_text = str(fx.export_and_import(ep, output_type="torch", func_name="main", fx_importer=_importer([])))
    for line in ir_text.splitlines():
        d = _SSA_DEF.match(line)
        if d and d.group(2) == op and value and _same_constant(d.group(3), value.group(1)):
            use = re.search(rf"= torch\.(aten\.[\w.]+) [^\n]*{re.escape(d.group(1))}\b", ir_text)
            if use:
                return use.group(1)
    return op.removeprefix("torch.")


def _same_constant(a: str, b: str) -> bool:
    try:
        return float(a.split(":")[0]) == float(b.split(":")[0])
    except ValueError:
        return a.strip() == b.strip()


def _raise_if_unsupported(text: str, backend: str) -> None:
    m = _ILLEGAL_OP.search(text) or _TORCH_OP.search(text)
    if m and ("legalize" in text or "unsupported" in text.lower() or "not supported" in text.lower()):
        op = m.group(1).removeprefix("torch.")
        raise UnsupportedOpError(op, backend, suggestion="try --backend tvm",
                                 detail="torch-mlir/IREE has no lowering for it")
