"""On/off `--option` values of the micro backend (schedule, inplace, specialize): one spelling for all of them."""

from __future__ import annotations

from edgecc.errors import TargetError

ON, OFF = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def switch_option(opts: dict, key: str, default: bool) -> bool:
    """`opts[key]` as a bool (1/0, true/false, on/off, yes/no, or a TOML bool); a one-line TargetError otherwise.

    Example: `switch_option({"inplace": "off"}, "inplace", True)` -> False.
    """
    value = str(opts.get(key, default)).lower()
    if value not in ON + OFF:
        raise TargetError(f"--option {key}={opts[key]}: expected 1/0 (true/false)")
    return value in ON
