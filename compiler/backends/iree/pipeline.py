"""The rewrites between the import and iree-compile, as a list of named passes run in order.

Each pass says whether it applies to this build and, when it runs, records its exact repro line (a Python call or
a tool command line) in the build's calls and what it did in the build's info. MODULE_PASSES rewrite the imported
module with the target's flags; TILE_PASSES run once the user's --flag values are in, since they read (and may
replace) IREE's own tile configurations for those flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecc.compiler.artifact import is_true
from edgecc.tools import find_tool, repro_line, run_tool

from . import passes
from .importer import graph_rewritten
from .options import IreeOptions


@dataclass
class Build:
    """One IREE compilation as the passes see it: the module file, the iree-compile flags so far, the repro lines
    so far, and what the passes did (artifact info sections)."""

    mlir: Path
    workdir: Path
    options: IreeOptions
    flags: list[str]
    calls: list[str]
    graph_stats: dict | None  # the channels-last graph rewrite's, when it was asked for
    info: dict = field(default_factory=dict)
    tiling: dict | None = None  # info["conv_data_tiling"], for targets that have it
    few_channel_convs: int = 0
    space_to_depth: bool = False
    max_pool_slices: bool = False
    configs: Path | None = None  # IREE's tile configurations of the module as it is now
    compile_from: Path | None = None  # rewritten configurations iree-compile goes on from, instead of the module

    def rewrite(self, function, path: Path, what: str, **kwargs) -> int:
        """Run a passes `function` on the file `path` in place (with `kwargs`), record its repro line; how many ops
        it rewrote (`what`)."""
        n = function(path, **kwargs)
        args = [path.name] + [f"{k}={v.name if isinstance(v, Path) else v}" for k, v in kwargs.items()]
        self.calls.append(f"{function.__module__}.{function.__name__}({', '.join(args)})  # {n} {what}")
        return n

    def configurations(self, name: str) -> Path:
        """The tiles iree-compile (same flags) picks for each dispatch: its `--compile-to=executable-configurations`
        output, written next to the module as `name`."""
        configs = self.mlir.with_name(name)
        argv = ["iree-compile", self.relative(self.mlir), *self.flags, "--compile-to=executable-configurations",
                "-o", self.relative(configs)]
        run_tool(argv, cwd=self.workdir, timeout=3600)
        self.calls.append(self.repro(argv))
        return configs

    def compile_argv(self, vmfb: Path) -> list[str]:
        """The iree-compile command line of the vmfb (run in `workdir`): from the module, or from the rewritten
        configurations."""
        if self.compile_from is not None:
            return ["iree-compile", self.relative(self.compile_from), "--compile-from=executable-configurations",
                    *self.flags, "-o", self.relative(vmfb)]
        return ["iree-compile", self.relative(self.mlir), *self.flags, "-o", self.relative(vmfb)]

    def relative(self, path: Path) -> str:
        """`path` as iree-compile is given it: relative to the bundle folder it runs in. IREE embeds its input's
        path in the vmfb (source map, DWARF); the temp folder's random name would make every build differ."""
        return Path(path).relative_to(self.workdir).as_posix()

    def repro(self, argv: list[str]) -> str:
        """The one-line repro of an IREE tool call run in `workdir`."""
        return repro_line([find_tool(argv[0])] + argv[1:], cwd=self.workdir)


class NhwcConvs:
    name = "nhwc_convs"

    def applies(self, b: Build) -> bool:
        return b.options.nhwc_rewrite

    def run(self, b: Build) -> None:
        b.info["nhwc_rewrites"] = b.rewrite(passes.rewrite_file, b.mlir, "depthwise/pooling ops to NHWC")


class ConvDataTiling:
    """Decides IREE's convolution data tiling (`auto`: on the imported module) and with it the flags and the
    defaults of space_to_depth and max_pool_slices; rewrites nothing."""

    name = "conv_data_tiling"

    def applies(self, b: Build) -> bool:
        return b.options.conv_data_tiling is not None

    def run(self, b: Build) -> None:
        opts = b.options
        on, why = self.decide(b.mlir, opts.conv_data_tiling)
        b.tiling = b.info["conv_data_tiling"] = {"enabled": on, "why": why}
        if on:
            b.flags += list(opts.conv_data_tiling_flags)
        elif graph_rewritten(b.graph_stats):
            # the pad fusion is for the channels-last graph's NHWC pads; iree-compile crashed with it on
            # the int8 QDQ models (ONNX import), which do not go through that rewrite
            b.flags += list(opts.conv_data_tiling_off_flags)
        min_channels = opts.conv_data_tiling_min_channels
        b.few_channel_convs = passes.few_channel_conv_count(b.mlir.read_text(), min_channels) \
            if on and min_channels else 0
        # by default together with data tiling, unless the few-channel convolutions stay direct
        b.space_to_depth = on and not b.few_channel_convs if opts.space_to_depth is None else opts.space_to_depth
        # data tiling gives pools an untiled encoding: a serial copy of the input
        b.max_pool_slices = on if opts.max_pool_slices is None else opts.max_pool_slices

    @staticmethod
    def decide(mlir: Path, mode: str) -> tuple[bool, str]:
        """(on, why). `auto` turns IREE's convolution data tiling on when dense k>1 convolutions carry at least a
        third of the model's convolution MACs (ResNet-18 99%, ResNet-50 48%), and off when depthwise/1x1
        convolutions dominate (MobileNetV2: 4%), where packing costs more than it saves (measured on the host; see
        targets/host.toml)."""
        if mode != "auto":
            return is_true(mode), f"conv_data_tiling={mode}"
        share = passes.spatial_conv_share(mlir.read_text())
        return share >= 1 / 3, f"auto: dense k>1 convolutions do {share:.0%} of the convolution MACs"


class SpaceToDepth:
    name = "space_to_depth"

    def applies(self, b: Build) -> bool:
        return b.tiling is not None and b.space_to_depth

    def run(self, b: Build) -> None:
        b.tiling["space_to_depth_convs"] = b.rewrite(passes.space_to_depth_file, b.mlir, "few-channel strided convs")


class FewChannelIm2col:
    name = "few_channel_im2col"

    def applies(self, b: Build) -> bool:
        return b.tiling is not None and not b.tiling["enabled"] and b.options.few_channel_im2col

    def run(self, b: Build) -> None:
        b.tiling["im2col_convs"] = b.rewrite(passes.few_channel_im2col_file, b.mlir,
                                             "few-input-channel convs as im2col + matmul")


class MaxPoolSlices:
    name = "max_pool_slices"

    def applies(self, b: Build) -> bool:
        return b.tiling is not None and b.max_pool_slices and b.options.nhwc_rewrite  # on the NHWC pools it makes

    def run(self, b: Build) -> None:
        b.tiling["max_pools_as_slices"] = b.rewrite(passes.max_pool_slices_file, b.mlir,
                                                    "max pools as strided-slice maxima")


class _DirectFewChannelConvs:
    def applies(self, b: Build) -> bool:
        return b.tiling is not None and bool(b.few_channel_convs) and not b.space_to_depth


class IreeOptChannelsLast(_DirectFewChannelConvs):
    name = "iree_opt_channels_last"

    def run(self, b: Build) -> None:
        b.flags = passes.channels_last_first(b.mlir, b.flags, b.workdir, b.calls)


class ConvDataTilingHints(_DirectFewChannelConvs):
    name = "conv_data_tiling_hints"

    def run(self, b: Build) -> None:
        b.tiling["direct_few_channel_convs"] = b.rewrite(
            passes.hint_conv_data_tiling_file, b.mlir, "few-channel convolutions left direct",
            min_channels=b.options.conv_data_tiling_min_channels)


class MatmulDataTilingHints:
    name = "matmul_data_tiling_hints"

    def applies(self, b: Build) -> bool:
        # Not with convolution data tiling on: hinted matmuls made IREE pick other tiles for the packed 3x3
        # convolutions, which then ran slower (ResNet-50 50.0 -> 53.3 ms, one thread).
        return b.graph_stats is not None and bool(b.options.matmul_data_tiling_flags) \
            and not (b.tiling or {}).get("enabled")

    def run(self, b: Build) -> None:
        # few-row matmuls do better with wide vector tiles than data-tiled (passes.FEW_ROWS)
        n = b.info["matmul_data_tiling_hints"] = b.rewrite(
            passes.hint_matmul_data_tiling_file, b.mlir, "long-reduction matmuls", wide_n=b.options.matmul_vector_n)
        if n:
            b.flags += list(b.options.matmul_data_tiling_flags)


class WidenMatmulTiles:
    name = "widen_matmul_tiles"

    def applies(self, b: Build) -> bool:
        return bool(b.options.matmul_vector_n and passes.plain_matmul_count(b.mlir.read_text()))

    def run(self, b: Build) -> None:
        # IREE's own tiles, of which the plain matmuls then get a wider vector N tile (as compilation_info)
        vector_n = b.options.matmul_vector_n
        configs = b.configurations("model.configs.mlir")
        widened = b.rewrite(passes.widen_matmul_tiles_file, b.mlir, "matmuls", config_path=configs,
                            vector_n=vector_n)
        b.info["matmul_vector_tiles"] = {"vector_n": vector_n, "widened": widened}
        b.configs = None if widened else configs  # the module changed


class WidenConvTiles:
    name = "widen_conv_tiles"

    def applies(self, b: Build) -> bool:
        return bool(b.options.conv_vector_n)

    def run(self, b: Build) -> None:
        # the direct convolutions' tiles are widened in the configurations, and the build goes on from there
        vector_n = b.options.conv_vector_n
        configs = b.configs or b.configurations("model.tiles.mlir")
        widened = b.rewrite(passes.widen_conv_tiles_file, configs, "direct convolutions", vector_n=vector_n)
        b.info["conv_vector_tiles"] = {"vector_n": vector_n, "widened": widened}
        if widened:
            b.compile_from = configs


MODULE_PASSES = (NhwcConvs(), ConvDataTiling(), SpaceToDepth(), FewChannelIm2col(), MaxPoolSlices(),
                 IreeOptChannelsLast(), ConvDataTilingHints(), MatmulDataTilingHints())
TILE_PASSES = (WidenMatmulTiles(), WidenConvTiles())


def run_passes(pipeline, build: Build) -> None:
    for p in pipeline:
        if p.applies(build):
            p.run(build)
