"""The link between the two halves of a split: `uart:921600`, `ble:1M`, `eth:100M` or a plain bytes per second.

A UART's number is its baud rate: 8N1 framing puts 10 bits on the wire per byte. BLE and Ethernet are given as
their bit rates (the PHY rate: BLE's 1M PHY, 100 Mbit/s Ethernet), so the bytes per second here are an upper bound
on what an application sees; a measured application throughput is given as a plain number of bytes per second.

    >>> parse_link("uart:921600").bytes_per_s
    92160.0
    >>> parse_link("eth:100M").seconds(16_384)
    0.00131072
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgecc.errors import UsageError

BITS_PER_BYTE = {"uart": 10, "ble": 8, "eth": 8}  # uart: start bit + 8 data bits + stop bit
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG]?)")
EXAMPLES = "uart:921600, ble:1M, eth:100M or a number of bytes per second such as 250000"


@dataclass(frozen=True)
class Link:
    spec: str  # as the user wrote it
    kind: str  # uart | ble | eth | bytes
    rate: float  # baud (uart), bits/s (ble, eth) or bytes/s
    bytes_per_s: float

    def seconds(self, nbytes: int) -> float:
        """Time to send `nbytes` over the link at its rate (no protocol overhead beyond the UART's framing)."""
        return nbytes / self.bytes_per_s

    def describe(self) -> str:
        unit = {"uart": "baud", "ble": "bit/s", "eth": "bit/s", "bytes": "B/s"}[self.kind]
        return f"{self.spec} ({_si(self.rate)} {unit} = {_si(self.bytes_per_s)} B/s)"

    def to_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "rate": self.rate, "bytes_per_s": self.bytes_per_s,
                "bits_per_byte": BITS_PER_BYTE.get(self.kind, 8)}


def _si(x: float) -> str:
    for div, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.4g}{s}"
    return f"{x:.4g}"


def _number(text: str, spec: str) -> float:
    m = _NUMBER.fullmatch(text)
    value = float(m.group(1)) * _SUFFIX[m.group(2).lower()] if m else math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"link {spec!r} does not parse: {text!r} is not a positive rate; write {EXAMPLES}")
    return value


def parse_link(spec: str) -> Link:
    """A Link from `uart:BAUD`, `ble:BITS`, `eth:BITS` (k/M/G suffixes) or `BYTES_PER_S`; UsageError otherwise."""
    text = str(spec).strip()
    kind, sep, rate = text.partition(":")
    if not sep:
        value = _number(text, text)
        return Link(text, "bytes", value, value)
    kind = kind.lower()
    if kind not in BITS_PER_BYTE:
        raise UsageError(f"link {spec!r} does not parse: unknown kind {kind!r} (uart, ble, eth); write {EXAMPLES}")
    value = _number(rate, text)
    return Link(text, kind, value, value / BITS_PER_BYTE[kind])
