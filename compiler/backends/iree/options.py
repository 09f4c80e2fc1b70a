"""The IREE backend's options: the user's --option keys over the target file's [backends.iree] options, parsed and
checked once, before the import (`conv_data_tiling=auto` is decided later, on the imported module)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from edgecc.compiler.artifact import bool_option as _bool_option
from edgecc.errors import TargetError


def _user(description: str) -> dict:
    """Field metadata of a key the user may set with --option (the target file may set it too)."""
    return {"option": description}


@dataclass(frozen=True)
class IreeOptions:
    nhwc_rewrite: bool = field(default=False, metadata=_user("1/0: NHWC convolution rewrite of the imported module"))
    nhwc_graph: bool = field(default=False, metadata=_user("1/0: channels-last graph rewrite at the ATen level"))
    # None: the target has no convolution data tiling; else "auto" or one of the 1/0 spellings, lower-cased
    conv_data_tiling: str | None = field(default=None, metadata=_user("1/0/auto: IREE's convolution data tiling"))
    conv_data_tiling_min_channels: int = field(
        default=0, metadata=_user("convolutions with fewer input channels stay direct"))
    # None: decided with convolution data tiling (user only, like max_pool_slices)
    space_to_depth: bool | None = field(default=None,
                                        metadata=_user("1/0: the stem as a space-to-depth convolution"))
    max_pool_slices: bool | None = field(default=None,
                                         metadata=_user("1/0: max pools as maxima of strided slices"))
    few_channel_im2col: bool = field(default=True, metadata=_user(
        "1/0: convolutions of 1-2 input channels as im2col + matmul (with conv data tiling off)"))
    matmul_vector_n: int = field(
        default=0, metadata=_user("0 or a power of two 8..64: vector N tile of default-tiled matmuls"))
    conv_vector_n: int = field(
        default=0, metadata=_user("0 or a power of two 8..64: vector N tile of direct convolutions"))
    # "" : the target has no executor choice (its driver as written); else auto / local-task / local-sync
    executor: str = field(default="", metadata=_user("auto/local-task/local-sync: the CPU executor (executor.py)"))
    # target-file only
    executor_sync_below_macs_per_layer: int = 0
    conv_data_tiling_flags: tuple[str, ...] = ()
    conv_data_tiling_off_flags: tuple[str, ...] = ()
    matmul_data_tiling_flags: tuple[str, ...] = ()
    note: str = ""
    check_variant_flags: tuple[str, ...] = ()
    check_variant_driver: str | None = None
    check_variant_device: str = ""
    check_variant_fp16_flags: tuple[str, ...] = ()  # what the check profile needs for fp16 (Float16 capability)

    @classmethod
    def parse(cls, user: dict, target: dict) -> IreeOptions:
        """The options of one build: `user` (--option KEY=VALUE) over `target` ([backends.iree] options); a
        one-line TargetError for a bad value or an unknown user key."""
        unknown = sorted(set(user) - set(OPTIONS))
        if unknown:
            raise TargetError(f"unknown iree option(s) {', '.join(unknown)}; valid iree options: "
                              f"{', '.join(sorted(OPTIONS))}")
        return cls(
            nhwc_rewrite=_bool_option(user, "nhwc_rewrite", bool(target.get("nhwc_rewrite"))),
            nhwc_graph=_bool_option(user, "nhwc_graph", bool(target.get("nhwc_graph"))),
            conv_data_tiling=_conv_data_tiling_mode(target, user),
            space_to_depth=_bool_option(user, "space_to_depth", None),
            max_pool_slices=_bool_option(user, "max_pool_slices", None),
            few_channel_im2col=_bool_option(user, "few_channel_im2col", True),
            matmul_vector_n=_vector_n_option(user, target, "matmul_vector_n"),
            conv_vector_n=_vector_n_option(user, target, "conv_vector_n"),
            conv_data_tiling_min_channels=_count_option(user, target, "conv_data_tiling_min_channels"),
            executor=_executor_option(user, target),
            executor_sync_below_macs_per_layer=int(target.get("executor_sync_below_macs_per_layer", 0)),
            conv_data_tiling_flags=tuple(target.get("conv_data_tiling_flags", [])),
            conv_data_tiling_off_flags=tuple(target.get("conv_data_tiling_off_flags", [])),
            matmul_data_tiling_flags=tuple(target.get("matmul_data_tiling_flags") or ()),
            note=target.get("note") or "",
            check_variant_flags=tuple(target.get("check_variant_flags") or ()),
            check_variant_driver=target.get("check_variant_driver"),
            check_variant_device=target.get("check_variant_device", ""),
            check_variant_fp16_flags=tuple(target.get("check_variant_fp16_flags") or ()),
        )


# --option key -> description (IreeBackend.OPTIONS, which compiler/driver.py checks the user's keys against)
OPTIONS = {f.name: f.metadata["option"] for f in fields(IreeOptions) if "option" in f.metadata}


def _conv_data_tiling_mode(target_opts: dict, user_opts: dict) -> str | None:
    """`conv_data_tiling`, the user's over the target's, lower-cased and checked; None for targets without it."""
    value = user_opts.get("conv_data_tiling", target_opts.get("conv_data_tiling", ""))
    if str(value).lower() not in ("", "auto"):
        _bool_option({"conv_data_tiling": value}, "conv_data_tiling", False, also="auto")
    return str(value).lower() or None


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


def _executor_option(user_opts: dict, target_opts: dict) -> str:
    """`executor`, the user's over the target's; only on targets that choose one (a CPU driver)."""
    from .executor import check_executor

    if "executor" in user_opts and "executor" not in target_opts:
        raise TargetError("--option executor: this target has no CPU executor to choose (only targets with "
                          "executor in [backends.iree] options, like host)")
    return check_executor(user_opts.get("executor", target_opts.get("executor", "")))
