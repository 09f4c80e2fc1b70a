"""edgecc.compiler: frontends -> squeeze -> backends, the driver that wires them, the CLI, the build matrix.

The flow and where each stage lives: docs/architecture.md.
"""
