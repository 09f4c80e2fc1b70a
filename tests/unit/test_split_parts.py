"""The pieces of `edgecc split` that need no toolchain: link specs, tensor frames, graph cuts, the int8 cut, the
choice of cut from costs, the breakdown page."""

import struct
import zlib

import numpy as np
import pytest

from edgecc.compiler.compose.costs import CutCost, best
from edgecc.compiler.compose.cut_quant import calibrate
from edgecc.compiler.compose.graph_cut import Cut
from edgecc.compiler.compose.link import parse_link
from edgecc.errors import DeviceRunError, TargetError, UsageError
from edgecc.runtime.frame import frame_bytes, pack_frame, read_frames


@pytest.mark.parametrize("spec,bytes_per_s", [("uart:921600", 92160.0), ("uart:115200", 11520.0),
                                              ("ble:1M", 125000.0), ("BLE:2m", 250000.0), ("eth:100M", 12.5e6),
                                              ("eth:1G", 125e6), ("250000", 250000.0), ("1.5k", 1500.0)])
def test_link_specs(spec, bytes_per_s):
    assert parse_link(spec).bytes_per_s == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("spec", ["uart:", "uart:fast", "wifi:54M", "uart:-5", "0", "eth:100X", "", "nan"])
def test_bad_link_spec_is_one_line_usage_error(spec):
    with pytest.raises(UsageError) as e:
        parse_link(spec)
    assert "\n" not in str(e.value) and "uart:921600" in str(e.value)


def test_frame_round_trip_skips_noise_and_reads_several():
    a = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    b = np.array([[-128, 0, 127]], dtype=np.int8)
    data = b"boot: hello\r\n" + pack_frame(a) + b"\x00\x01" + pack_frame(b)
    got = read_frames(data)
    assert [g.dtype for g in got] == [np.float32, np.int8]
    assert (got[0] == a).all() and (got[1] == b).all()
    assert len(pack_frame(a)) == frame_bytes(a.shape, a.dtype) == 12 + 16 + 96 + 4


def test_frame_layout_is_the_documented_one():
    f = pack_frame(np.ones((2, 3), dtype=np.int8))
    assert f[:4] == b"EDGF" and f[4:8] == bytes([1, 2, 2, 0])
    assert struct.unpack("<I", f[8:12])[0] == 6 and struct.unpack("<2I", f[12:20]) == (2, 3)
    assert struct.unpack("<I", f[-4:])[0] == zlib.crc32(f[:-4])


@pytest.mark.parametrize("damage,needle", [(lambda f: f[:-5], "cut short"), (lambda f: f[:9], "cut short"),
                                           (lambda f: f[:20] + bytes([f[20] ^ 1]) + f[21:], "CRC-32"),
                                           (lambda f: f[:4] + bytes([9]) + f[5:], "version 9"),
                                           (lambda f: b"no frame here", "no tensor frame")])
def test_damaged_frames_are_one_line_errors(damage, needle):
    f = pack_frame(np.ones((4, 4), dtype=np.float32))
    with pytest.raises(DeviceRunError) as e:
        read_frames(damage(f))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_int8_cut_quantization_is_within_half_a_step():
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((1, 8, 4, 4)), 0).astype(np.float32)  # post-ReLU: zero stays exact
    q = calibrate([x], "test")
    assert q.zero_point == -128
    back = q.dequantize(q.quantize(x))
    assert np.abs(back - x).max() <= q.scale / 2 + 1e-7
    assert (back[x == 0] == 0).all()


def _cost(node, shape, front, back):
    return CutCost(Cut(node, 0, "op", shape, "float32", 1, 1), "float32", front, "m", back, "m")


def test_best_cut_moves_with_the_link():
    costs = [_cost("early", (1, 8, 16, 16), 0.008, 0.001), _cost("late", (1, 256), 0.020, 0.0005),
             CutCost(Cut("big", 0, "op", (1, 4), "float32", 1, 1), "float32", status="does not fit: RAM")]
    assert best(costs, parse_link("eth:1G")).cut.node == "early"
    assert best(costs, parse_link("uart:115200")).cut.node == "late"
    slow = parse_link("uart:115200")
    assert costs[1].total_s(slow) == pytest.approx(0.020 + (12 + 8 + 1024 + 4) / 11520 + 0.0005)
    assert costs[2].total_s(slow) is None


def test_board_clock_and_uart_come_from_the_board_file():
    from edgecc.targets import get_target
    from edgecc.targets.schema import parse_target

    m4 = get_target("cortex-m4")
    assert m4.board("mps2-an386").clock_mhz == 25 and m4.board("mps2-an386").uart == "cmsdk-apb"
    assert m4.board("NUCLEO-L4R5ZI").clock_mhz == 120 and m4.board("NUCLEO-L4R5ZI").uart == ""
    data = {"name": "x", "device": "d", "kind": "mcu", "default_backend": "micro", "cpu": {"triple": "t", "cpu": "c"},
            "backends": {"micro": {}}, "boards": {"b": {"ram_kb": 1, "flash_kb": 1, "uart": "pl011"}}}
    with pytest.raises(TargetError, match="not one of cmsdk-apb"):
        parse_target(data)


def test_breakdown_page_has_a_bar_per_cut_and_marks_the_choice():
    from edgecc.runtime.report_split import split_report_html

    link = parse_link("uart:921600")
    costs = [_cost("relu", (1, 8, 16, 16), 0.008, 0.001), _cost("flatten", (1, 256), 0.020, 0.0005)]
    doc = {"model": {"name": "m"}, "front": {"target": "cortex-m4"}, "back": {"target": "host"},
           "cut": {"node": "flatten", "tensor": {"name": "flatten", "dtype": "float32", "shape": [1, 256],
                                                 "frame_bytes": 1044}},
           "link": link.to_dict(), "validation": {"status": "passed"},
           "choice": {"candidates": [c.row(link) for c in costs], "by_link": {"uart:921600": "flatten"}}}
    page = split_report_html(doc)
    assert page.count('class="cut"') == 2 and page.count('data-part="link"') == 2
    assert 'data-node="flatten" data-chosen="1"' in page and 'id="split-candidates"' in page

