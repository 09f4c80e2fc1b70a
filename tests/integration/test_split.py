"""`edgecc split` end to end: resnet8 cut across a Cortex-M4 (QEMU) and the host, the front's frames over
semihosting and over the MPS2 UART read by the back's runner, auto's choice at two link speeds, the int8 cut, and
the refusals (one line, nothing written)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import edgecc
from edgecc.compiler.cli import main
from edgecc.compiler.compose import SplitBundle
from edgecc.compiler.compose.link import parse_link
from edgecc.runtime.frame import read_frames
from edgecc.runtime.runners.qemu_system import qemu_argv
from tests.conftest import DATA, require_cortex_m_tools

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
require_cortex_m_tools()

SHRINKING = f"{DATA / 'split_factory.py'}:build"


@pytest.fixture(scope="module")
def resnet8_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("split") / "resnet8-split"
    return edgecc.split("resnet8", targets="cortex-m4,host", backends="micro,tvm", at="relu__4",
                        link="uart:921600", output=out)


def test_resnet8_split_validates_end_to_end_through_qemu(resnet8_split):
    s = resnet8_split
    v = s.doc["validation"]
    assert v["status"] == "passed" and v["front_ran_on"] == "qemu-system-arm -M mps2-an386"
    assert v["back_ran_on"] == "host" and v["reference"] == "pytorch (the whole model)"
    assert v["max_abs_error"] < 1e-5 and v["top1_agreement"] == 1.0
    t = s.doc["cut"]["tensor"]
    assert (t["name"], t["shape"], t["dtype"], t["bytes"]) == ("relu__4", [1, 32, 16, 16], "float32", 32768)
    assert s.doc["link"]["transfer_s"] == pytest.approx(t["frame_bytes"] / 92160)
    assert s.front.manifest["artifact"]["info"]["output_format"] == "edgecc-frame/1"
    assert s.back.manifest["io"]["inputs"][0]["shape"] == [1, 32, 16, 16]
    assert SplitBundle.load(s.path).doc == s.doc  # both bundles verify and are the ones split.json names
    readme = (s.path / "README.md").read_text()
    assert "edgecc_frame_write(edgecc_sink_uart" in readme and "python -m edgecc.runtime.split_back" in readme


def _run_front(front, tmp_path, serial: str):
    (tmp_path / "input.bin").write_bytes(front.reference_inputs()[0].tobytes())
    argv = qemu_argv(front.path / "firmware.elf", "mps2-an386", ["input.bin", "output.bin", "0", "1"])
    argv[argv.index("-serial") + 1] = serial
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_front_streams_frames_over_semihosting_and_uart_and_the_back_reads_them(resnet8_split, tmp_path):
    s = resnet8_split
    _run_front(s.front, tmp_path, f"file:{tmp_path / 'uart.bin'}")
    uart, semihosted = (tmp_path / "uart.bin").read_bytes(), (tmp_path / "output.bin").read_bytes()
    assert uart == semihosted and len(uart) == s.doc["cut"]["tensor"]["frame_bytes"]
    (cut,) = read_frames(uart)
    assert cut.shape == (1, 32, 16, 16) and cut.dtype == np.float32
    r = subprocess.run([sys.executable, "-m", "edgecc.runtime.split_back", str(s.path / "back"),
                        str(tmp_path / "uart.bin"), "-o", str(tmp_path / "out.npy")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = s.back.reference_outputs()[0]
    assert np.abs(np.load(tmp_path / "out.npy") - ref).max() < 1e-5
    bad = tmp_path / "bad.bin"
    bad.write_bytes(uart[:100] + bytes([uart[100] ^ 0xFF]) + uart[101:])
    r = subprocess.run([sys.executable, "-m", "edgecc.runtime.split_back", str(s.path / "back"), str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 14 and "CRC-32" in r.stderr and r.stderr.count("\n") == 1


def test_uart_writer_compiles_for_cortex_m4_with_both_register_layouts(tmp_path):
    from edgecc.compiler.micro.link import runtime_c_dir

    rt = runtime_c_dir()
    base = ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
            "-Wall", "-Wextra", "-Werror", f"-I{rt / 'include'}", "-c", str(rt / "src" / "frame.c")]
    stm32 = ["-DEDGECC_UART_BASE=0x40008000", "-DEDGECC_UART_DATA_OFFSET=0x28", "-DEDGECC_UART_STATUS_OFFSET=0x1C",
             "-DEDGECC_UART_TX_READY_MASK=0x80", "-DEDGECC_UART_CTRL_OFFSET=-1"]
    for name, extra in (("cmsdk", []), ("stm32", stm32)):
        obj = tmp_path / f"frame-{name}.o"
        subprocess.run([*base, *extra, "-o", str(obj)], check=True, capture_output=True, text=True)
        syms = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True).stdout
        assert " T edgecc_frame_write" in syms and " T edgecc_sink_uart" in syms


@pytest.fixture(scope="module")
def auto_int8(tmp_path_factory):
    out = tmp_path_factory.mktemp("auto") / "shrinking-split"
    return edgecc.split(SHRINKING, targets="cortex-m4,host", backends="micro,tvm", at="auto", link="uart:115200",
                        cut_dtype="int8", output=out)


def test_auto_measures_every_block_boundary_and_its_choice_moves_with_the_link(auto_int8):
    c = auto_int8.doc["choice"]
    rows = {r["node"]: r for r in c["candidates"]}
    assert list(rows) == ["relu", "max_pool2d", "flatten"]  # conv -> relu and conv -> relu -> flatten fused
    assert all(r["status"] == "ok" for r in rows.values())
    for r in rows.values():
        assert r["front_method"].startswith("estimate: QEMU instructions") and r["front_instructions"] > 0
        assert r["front_s"] == pytest.approx(r["front_instructions"] / 25e6)
        assert r["back_method"].startswith("wall clock") and r["back_s"] > 0
    # the choice for each link is the measured minimum of front + link + back
    for spec, node in c["by_link"].items():
        link = parse_link(spec)
        total = {n: r["front_s"] + r["wire_bytes"] / link.bytes_per_s + r["back_s"] for n, r in rows.items()}
        assert node == min(total, key=total.get), spec
    assert c["by_link"]["uart:115200"] != c["by_link"]["eth:1G"]
    assert auto_int8.doc["cut"]["node"] == c["by_link"]["uart:115200"]
    page = (auto_int8.path / "report.html").read_text()
    assert 'id="split-breakdown"' in page and page.count('class="cut"') == 3


def test_edgecc_report_renders_a_split_found_in_its_folders(auto_int8, tmp_path):
    """`edgecc report DIR` picks up split.json beside (or without) benchmark reports: the breakdown plot is in the
    merged page."""
    from tests.conftest import edgecc_cli

    p = edgecc_cli("report", auto_int8.path.parent, "-o", tmp_path / "r.html")
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "r.html").read_text()
    assert 'id="split-breakdown"' in page and "Candidate cuts (measured)" in page


def test_int8_cut_shrinks_the_transfer_4x_and_reports_the_added_error(auto_int8):
    d = auto_int8.doc
    t, fp32 = d["cut"]["tensor"], d["cut"]["unquantized"]
    assert t["dtype"] == "int8" and fp32["bytes"] == 4 * t["bytes"]
    # the payload is exactly a quarter; a frame's 20-28 byte header and CRC weigh on a small tensor
    assert d["cut"]["transfer_shrink"] == pytest.approx(fp32["frame_bytes"] / t["frame_bytes"], abs=1e-3)
    assert d["cut"]["transfer_shrink"] > 3.5
    assert auto_int8.front.manifest["io"]["outputs"][0]["dtype"] == "int8"
    v = d["validation"]
    assert v["status"] == "passed" and v["reference"] == "pytorch back on the front's int8 bytes"
    added = v["int8_added_error"]["artifacts_vs_fp32_model"]
    assert 0 < added["max_abs_error"] < 0.05, added  # int8 rounding changes the logits a little, not a lot
    assert v["cut"]["max_int8_steps"] <= 1


def _cli_fails(capsys, args, code, *needles):
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert err.count("\n") == 0 and err.startswith("edgecc: error: ") and "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.parametrize("args,code,needles", [
    (["--at", "conv2d_99"], 4, ["has no node 'conv2d_99'", "relu_"]),
    (["--at", "conv2d_1"], 4, ["2 tensors cross a cut after conv2d_1 (relu_, conv2d_1)"]),
    (["--at", "relu__4", "--link", "uart:fast"], 2, ["link 'uart:fast' does not parse", "uart:921600"]),
    (["--at", "relu__4", "--link", "wifi:54M"], 2, ["unknown kind 'wifi'"]),
    (["--at", "relu_", "--targets", "cortex-m4"], 2, ["FRONT,BACK"]),
    (["--at", "relu_", "--targets", "cortex-m4,mars"], 3, ["unknown target 'mars'"]),
    (["--at", "relu_", "--board", "nRF52840-DK", "--input-shape", "1x3x96x96"], 9,
     ["KB RAM", "board nRF52840-DK (cortex-m4) has 256 KB"]),
])
def test_bad_split_requests_are_one_line_errors_and_write_nothing(capsys, tmp_path, args, code, needles):
    out = tmp_path / "out" / "split"
    _cli_fails(capsys, ["-q", "split", "resnet8", "--targets", "cortex-m4,host", "-o", str(out), *args], code,
               *needles)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_onnx_model_and_uncuttable_model_are_refused(capsys, tmp_path, resnet8_split):
    onnx = tmp_path / "m.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),), str(onnx), dynamo=False)
    _cli_fails(capsys, ["split", str(onnx), "--at", "x", "-o", str(tmp_path / "a")], 4, "ONNX models are not split")
    _cli_fails(capsys, ["split", f"{DATA / 'split_factory.py'}:residual", "-o", str(tmp_path / "b")], 4,
               "no node where a single tensor crosses")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_split_folder_may_be_replaced_and_other_folders_not(resnet8_split, tmp_path):
    from edgecc.compiler.compose.split import check_split_replaceable
    from edgecc.errors import BundleError

    check_split_replaceable(resnet8_split.path, force=False)  # a split that verifies: `edgecc split` again is fine
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(BundleError, match="pass --force"):
        check_split_replaceable(other, force=False)


def test_cli_split_lists_cuts_and_prints_the_result(capsys, resnet8_split):
    assert main(["split", "resnet8", "--list"]) == 0
    out = capsys.readouterr().out
    assert "relu__4" in out and "32,768" in out and "conv2d_1 " not in out
    doc = json.loads((resnet8_split.path / "split.json").read_text())
    assert doc["schema"] == "edgecc.split/1" and doc["choice"] == {"method": "--at", "at": "relu__4"}


@pytest.mark.slow
def test_resnet8_auto_cuts_at_the_stem_on_a_fast_link_and_after_the_pool_on_a_slow_one(tmp_path):
    s = edgecc.split("resnet8", targets="cortex-m4,host", backends="micro,tvm", link="uart:115200",
                     output=tmp_path / "r8")
    by = s.doc["choice"]["by_link"]
    # on the 25 MHz MPS2 clock the M4 needs ~2.6 s for the whole model: a fast link sends the stem's 64 KB, a
    # 115200 baud UART (11.5 KB/s, 5.7 s for those 64 KB) is faster fed the 256-byte pooled vector
    assert by["uart:115200"] == "flatten" == s.doc["cut"]["node"]
    assert by["eth:100M"] == "relu_"
    assert s.doc["validation"]["status"] == "passed"


@pytest.mark.slow
def test_resnet8_int8_cut_end_to_end(tmp_path):
    s = edgecc.split("resnet8", targets="cortex-m4,host", backends="micro,tvm", at="relu__4", cut_dtype="int8",
                     output=tmp_path / "r8q")
    d = s.doc
    assert d["cut"]["unquantized"]["bytes"] == 4 * d["cut"]["tensor"]["bytes"] == 32768
    assert d["cut"]["transfer_shrink"] == 3.988  # frames of 32,800 and 8,224 bytes: a 32-byte header + CRC each
    added = d["validation"]["int8_added_error"]["artifacts_vs_fp32_model"]
    assert d["validation"]["status"] == "passed" and added["max_abs_error"] < 0.05 and added["top1_agreement"] == 1.0
