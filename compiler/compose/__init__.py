"""Composition beside the flow: a split is two bundles joined by a described tensor (split.py)."""

from edgecc.compiler.compose.split import SplitBundle, split

__all__ = ["SplitBundle", "split"]
