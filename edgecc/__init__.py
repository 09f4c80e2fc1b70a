"""edgecc: PyTorch models in, validated and timed deployment bundles out (IREE, TVM, TensorRT, Cortex-M).

    >>> import edgecc
    >>> bundle = edgecc.compile("resnet8", target="host", backend="iree")   # doctest: +SKIP
    >>> bundle.path, bundle.manifest["validation"]["passed"]                  # doctest: +SKIP

Importing edgecc needs no toolchain; IREE, TVM, torch-mlir and torch are imported when a stage needs them.
"""

from edgecc.errors import (
    BudgetError,
    BundleError,
    EdgeccError,
    ModelError,
    TargetError,
    ToolError,
    UnsupportedOpError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetError", "Bundle", "BundleError", "EdgeccError", "ModelError", "TargetError", "ToolError",
    "UnsupportedOpError", "ValidationError", "cascade", "compile", "get_target", "list_targets", "split", "__version__",
]


def __getattr__(name):
    # Lazy re-exports: keep `import edgecc` free of torch and the toolchains.
    if name == "compile":
        from edgecc.compiler.driver import compile
        return compile
    if name == "cascade":
        from edgecc.compiler.compose.cascade import cascade
        return cascade
    if name == "split":
        from edgecc.compiler.compose.split import split
        return split
    if name == "Bundle":
        from edgecc.bundle import Bundle
        return Bundle
    if name in ("get_target", "list_targets"):
        import edgecc.targets as t
        return getattr(t, name)
    raise AttributeError(f"module 'edgecc' has no attribute {name!r}")
