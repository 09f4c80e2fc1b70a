"""edgecc.runtime: runners (where a bundle runs), the benchmark harness and its baselines, reports, and the
device-side scripts and bare-metal C runtime that ship in bundles.

The flow and where each stage lives: docs/architecture.md.
"""
