"""Composition beside the flow: a split is two bundles joined by a described tensor (split.py); a cascade is two
compiled models and a policy in one bundle (cascade.py)."""

from edgecc.compiler.compose.cascade import CascadeBundle, cascade
from edgecc.compiler.compose.split import SplitBundle, split

__all__ = ["CascadeBundle", "SplitBundle", "cascade", "split"]
