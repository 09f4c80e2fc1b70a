"""Tensor frames: how the front of a split model sends its cut tensor (runtime/c/include/edgecc/frame.h).

    "EDGF"  u8 version (1)  u8 dtype  u8 ndim  u8 0  u32 payload_bytes  u32 shape[ndim]  payload  u32 crc32

Little-endian; crc32 is zlib.crc32 of every byte before it. The front firmware writes frames to a semihosting file
in QEMU and to its UART on a board; the back's runner reads them here. Bytes before a frame's magic (a board's boot
messages on the same UART) are skipped; a frame that is cut short or whose checksum does not match is an error.

    >>> import numpy as np
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> (b,) = read_frames(b"boot ok\\n" + pack_frame(a))
    >>> bool((a == b).all())
    True
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from edgecc.errors import DeviceRunError

MAGIC = b"EDGF"
VERSION = 1
DTYPES = {1: "float32", 2: "int8", 3: "uint8", 4: "int32"}  # the codes of edgecc/frame.h
CODES = {v: k for k, v in DTYPES.items()}
FORMAT = "edgecc-frame/1"


def frame_bytes(shape, dtype) -> int:
    """Bytes one frame of a tensor takes on the wire: header + payload + checksum."""
    return 12 + 4 * len(shape) + math.prod(shape) * np.dtype(dtype).itemsize + 4


def pack_frame(a: np.ndarray) -> bytes:
    """A frame of `a`, byte for byte what edgecc_frame_write sends (for tests and host-side senders)."""
    a = np.ascontiguousarray(a)
    code = CODES.get(str(a.dtype))
    if code is None:
        raise DeviceRunError(f"dtype {a.dtype} has no frame code; frames carry {', '.join(CODES)}")
    head = MAGIC + struct.pack("<BBBBI", VERSION, code, a.ndim, 0, a.nbytes) + struct.pack(f"<{a.ndim}I", *a.shape)
    body = head + a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def read_frames(data: bytes, where: str = "the stream") -> list[np.ndarray]:
    """Every frame in `data`, in order. DeviceRunError naming `where` for a truncated or corrupted frame."""
    out, pos = [], 0
    while True:
        start = data.find(MAGIC, pos)
        if start < 0:
            break
        a, pos = _read_one(data, start, where)
        out.append(a)
    if not out:
        raise DeviceRunError(f"no tensor frame in {where} ({len(data)} bytes, no {MAGIC.decode()} magic); is the "
                             "front built with frames (the split's front bundle) and wired to this input?")
    return out


def _read_one(data: bytes, start: int, where: str) -> tuple[np.ndarray, int]:
    if len(data) < start + 12:
        raise DeviceRunError(f"{where}: a frame header is cut short at byte {start}; the link dropped bytes")
    version, code, ndim, _, nbytes = struct.unpack_from("<BBBBI", data, start + 4)
    if version != VERSION or code not in DTYPES:
        raise DeviceRunError(f"{where}: frame at byte {start} has version {version}, dtype code {code}; this reader "
                             f"reads version {VERSION} with dtypes {sorted(DTYPES)}")
    shape = struct.unpack_from(f"<{ndim}I", data, start + 12) if len(data) >= start + 12 + 4 * ndim else None
    end = start + 12 + 4 * ndim + nbytes
    if shape is None or len(data) < end + 4:
        raise DeviceRunError(f"{where}: frame at byte {start} is cut short ({len(data) - start} of {end + 4 - start} "
                             "bytes); the link dropped bytes or the front stopped early")
    dtype = np.dtype(DTYPES[code]).newbyteorder("<")
    if math.prod(shape) * dtype.itemsize != nbytes:
        raise DeviceRunError(f"{where}: frame at byte {start} says shape {list(shape)} {DTYPES[code]} but "
                             f"{nbytes} payload bytes")
    (crc,) = struct.unpack_from("<I", data, end)
    if crc != zlib.crc32(data[start:end]):
        raise DeviceRunError(f"{where}: frame at byte {start} fails its CRC-32 check; bytes were corrupted on the "
                             "link (check the baud rate and wiring)")
    payload = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=end - nbytes)
    return payload.astype(dtype.newbyteorder("="), copy=True).reshape(shape), end + 4
