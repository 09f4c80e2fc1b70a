"""The Cortex-M path end to end: TVM kernels + edgecc AOT C + runtime/c, built with arm-none-eabi-gcc and run
in qemu-system-arm (mps2-an386 = M4, mps2-an500 = M7, mps3-an547 = M55), compared with PyTorch."""

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

import edgecc
from edgecc.errors import BudgetError
from tests.conftest import edgecc_cli, require_cortex_m_tools

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
require_cortex_m_tools()

TARGETS = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500", "cortex-m55": "mps3-an547"}


class SmallCnn(torch.nn.Module):
    """Conv+BN+ReLU, strided conv, max-pool, residual add, flatten (a view), dense: every kernel kind we fuse."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = torch.nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = torch.nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        y = torch.relu(self.c2(y) + y)
        y = torch.nn.functional.max_pool2d(torch.relu(self.c3(y)), 2)
        return self.fc(y.flatten(1))


def small_cnn():
    torch.manual_seed(0)
    net = SmallCnn().eval()
    with torch.no_grad():  # non-trivial BN statistics so the folded epilogue is really tested
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net, (torch.randn(1, 3, 16, 16),)


@pytest.fixture(scope="module")
def cnn_m4(tmp_path_factory):
    net, inputs = small_cnn()
    return edgecc.compile(net, inputs, target="cortex-m4", backend="micro", name="small-cnn",
                          output=tmp_path_factory.mktemp("m4") / "small-cnn")


def test_small_cnn_runs_in_qemu_and_matches_pytorch(cnn_m4):
    v = cnn_m4.manifest["validation"]
    assert v["status"] == "passed" and v["ran_on"] == "qemu-system-arm -M mps2-an386"
    assert v["max_abs_error"] < 1e-5
    # a fresh input, fed through a semihosting file, against eager PyTorch
    net, _ = small_cnn()
    x = np.random.default_rng(7).standard_normal((1, 3, 16, 16)).astype(np.float32)
    out = cnn_m4.runner().run([x])
    ref = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out[0], ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out[0], cnn_m4.reference_outputs()[0])  # the input really changed the output


def test_bundle_has_firmware_library_header_and_footprint(cnn_m4):
    files = set(cnn_m4.manifest["artifact"]["files"])
    assert {"firmware.elf", "firmware.bin", "firmware.hex", "libmodel.a", "model.h", "model.c", "kernels.c",
            "firmware.map", "memory_plan.json"} <= files
    for f in files:
        assert (cnn_m4.path / f).is_file(), f
    info = cnn_m4.manifest["artifact"]["info"]
    mem = info["memory"]
    assert info["board"] == "mps2-an386" and info["codegen"] == "c"
    assert 0 < mem["arena_lower_bound_bytes"] <= mem["arena_bytes"]
    assert mem["weights_bytes"] > 10_000 and mem["flash_bytes"] > mem["weights_bytes"]
    assert mem["ram_bytes"] >= mem["arena_bytes"] + mem["stack_bytes"]
    # the scheduled kernels need no scratch: padding and epilogues are fused into the convolutions
    assert all(k["workspace_bytes"] == 0 for k in info["kernels"])
    model_c = (cnn_m4.path / "model.c").read_text()
    assert "Generated from small-cnn" in model_c and "static const float w0_data" in model_c
    assert "malloc" not in model_c
    header = (cnn_m4.path / "model.h").read_text()
    assert f"#define SMALL_CNN_ARENA_BYTES {mem['arena_bytes']}" in header
    # sizes in the manifest are the ELF's: .bss holds the arena
    plan = json.loads((cnn_m4.path / "memory_plan.json").read_text())
    assert plan["arena_bytes"] == mem["arena_bytes"] and mem["sections"][".bss"] >= mem["arena_bytes"]


def test_timing_is_instruction_counts_not_time(cnn_m4):
    t = cnn_m4.runner().time(cnn_m4.reference_inputs(), warmup=1, iters=2)
    assert t["unit"] == "instructions" and "QEMU icount" in t["method"]
    assert len(t["samples"]) == 2 and t["samples"][0] > 10_000
    assert abs(t["samples"][0] - t["samples"][1]) <= 2 * t["extra"]["resolution_instructions"]  # deterministic


USER_MAIN = r"""
/* A user's own firmware: its own startup and linker script, the edgecc library and header, nothing else. */
#include <stdint.h>
#include "model.h"
#include "expected.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
static void exit_code(int code) {
  uint32_t block[2] = {0x20026u, (uint32_t)code};
  register int r0 __asm__("r0") = 0x20;
  register void* r1 __asm__("r1") = block;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  for (;;) {}
}
void reset(void) {
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* FPU on */
  for (uint32_t *s = &_sidata, *d = &_sdata; d < &_edata;) *d++ = *s++;
  for (uint32_t* d = &_sbss; d < &_ebss;) *d++ = 0;
  exit_code(main());
}
__attribute__((section(".vectors"), used)) void* const vectors[2] = {&_estack, reset};

static float input[SMALL_CNN_INPUT0_ELEMS] __attribute__((aligned(16)));
static float output[SMALL_CNN_OUTPUT0_ELEMS] __attribute__((aligned(16)));

int main(void) {
  for (int i = 0; i < SMALL_CNN_INPUT0_ELEMS; i++) input[i] = expected_input[i];
  void* ins[] = {input};
  void* outs[] = {output};
  if (small_cnn_run(ins, outs) != 0) return 2;
  for (int i = 0; i < SMALL_CNN_OUTPUT0_ELEMS; i++) {
    float d = output[i] - expected_output[i];
    if (d > 1e-4f || d < -1e-4f) return 3;
  }
  return 0;
}
"""

USER_LD = """
MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  _sidata = LOADADDR(.data);
  .data : { _sdata = .; *(.data*) . = ALIGN(4); _edata = .; } > RAM AT > FLASH
  .bss (NOLOAD) : { _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; } > RAM
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}
"""


def test_library_and_header_link_into_a_users_own_firmware(cnn_m4, tmp_path):
    for f in ("model.h", "libmodel.a"):
        shutil.copy(cnn_m4.path / f, tmp_path / f)
    x = cnn_m4.reference_inputs()[0].reshape(-1)
    y = cnn_m4.reference_outputs()[0].reshape(-1)
    fmt = lambda a: ", ".join(f"{v:.9g}f" for v in a)  # noqa: E731
    (tmp_path / "expected.h").write_text(f"static const float expected_input[] = {{{fmt(x)}}};\n"
                                         f"static const float expected_output[] = {{{fmt(y)}}};\n")
    (tmp_path / "main.c").write_text(textwrap.dedent(USER_MAIN))
    (tmp_path / "user.ld").write_text(USER_LD)
    gcc = ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]
    subprocess.run([*gcc, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Tuser.ld", "main.c",
                    "libmodel.a", "-lm", "-o", "user.elf"], cwd=tmp_path, check=True, capture_output=True)
    proc = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                           "-serial", "null", "-semihosting-config", "enable=on,target=native", "-kernel",
                           "user.elf"], cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0, f"user firmware exit {proc.returncode}: 2 = model error, 3 = wrong output"


@pytest.mark.parametrize("target,codegen", [("cortex-m7", "c"), ("cortex-m55", "c"), ("cortex-m55", "llvm"),
                                            ("cortex-m4", "llvm")])
def test_small_cnn_on_every_core_and_codegen(target, codegen, tmp_path):
    net, inputs = small_cnn()
    b = edgecc.compile(net, inputs, target=target, backend="micro", name="small-cnn", output=tmp_path / "b",
                       options={"codegen": codegen})
    info = b.manifest["artifact"]["info"]
    assert b.manifest["validation"]["status"] == "passed"
    assert info["qemu_machine"] == TARGETS[target] and info["codegen"] == codegen
    assert ("kernels.o" in b.manifest["artifact"]["files"]) == (codegen == "llvm")
    if target == "cortex-m55" and codegen == "llvm":  # Helium (MVE) instructions in the kernels
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(b.path / "kernels.o")], capture_output=True,
                             text=True, check=True).stdout
        assert any(op in dis for op in ("vfma.f32", "vldrw.u32", "vstrw.32"))


def test_model_too_big_for_the_board_is_refused_with_numbers(tmp_path):
    wide = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(64, 64, 3, padding=1)).eval()
    with pytest.raises(BudgetError, match=r"needs \d+ KB RAM \(arena [\d.]+ KB.*board nRF52840-DK .*has 256 KB; "
                                          r"try --quantize int8"):
        edgecc.compile(wide, (torch.randn(1, 3, 64, 64),), target="cortex-m4", board="nRF52840-DK",
                       backend="micro", output=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    big = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 512)).eval()  # 2 MB of weights
    with pytest.raises(BudgetError, match=r"needs \d+ KB flash \(weights 2050.0 KB\), board STM32F746G-DISCO"):
        edgecc.compile(big, (torch.randn(1, 1024),), target="cortex-m7", board="STM32F746G-DISCO",
                       backend="micro", output=tmp_path / "c")


def test_real_board_bundle_builds_but_says_it_cannot_run_here(tmp_path):
    net, inputs = small_cnn()
    b = edgecc.compile(net, inputs, target="cortex-m4", board="NUCLEO-L4R5ZI", backend="micro",
                       name="small-cnn", output=tmp_path / "b")
    info = b.manifest["artifact"]["info"]
    assert info["flash_command"] == "pyocd flash --target stm32l4r5zitx firmware.hex"
    assert "not run" in b.manifest["validation"]["status"]
    ld = (b.path / "firmware.ld").read_text()
    assert "ORIGIN = 0x08000000, LENGTH = 2048K" in ld and "ORIGIN = 0x20000000, LENGTH = 640K" in ld
    hex_first = (b.path / "firmware.hex").read_text().splitlines()[0]
    assert hex_first == ":020000040800F2"  # Intel HEX: upper address 0x0800, where the STM32 flash is


def test_cli_compile_and_bench_ds_cnn(tmp_path):
    out = tmp_path / "build" / "ds"  # given to the CLI as a relative path, as `make demo` does
    r = edgecc_cli("compile", "ds-cnn", "--target", "cortex-m4", "-o", "build/ds", "--option", "codegen=llvm",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["validation"]["status"] == "passed" and m["validation"]["top1_agreement"] == 1.0
    assert m["options"]["codegen"] == "llvm"
    r = edgecc_cli("bench", "build/ds", "--warmup", "1", "--iters", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "instructions" in r.stdout and "QEMU icount" in r.stdout


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("model", ["cifar-cnn", "resnet8", "ds-cnn"])
def test_zoo_models_on_every_core(model, target, tmp_path):
    b = edgecc.compile(model, target=target, backend="micro", output=tmp_path / "b")
    v = b.manifest["validation"]
    assert v["status"] == "passed" and v["top1_agreement"] == 1.0 and v["max_abs_error"] < 1e-4
    mem = b.manifest["artifact"]["info"]["memory"]
    assert mem["arena_bytes"] <= 1.05 * mem["arena_lower_bound_bytes"]
    assert mem["flash_bytes"] <= mem["board_flash_bytes"] and mem["ram_bytes"] <= mem["board_ram_bytes"]


def test_unscheduled_kernels_get_their_scratch_from_the_arena(cnn_m4, tmp_path):
    # without the schedule, TVM's kernels keep padded inputs and whole conv outputs as scratch; the runtime's
    # TVMBackendAllocWorkspace serves them from arena windows the plan reserved next to the live tensors
    net, inputs = small_cnn()
    b = edgecc.compile(net, inputs, target="cortex-m4", backend="micro", name="small-cnn", output=tmp_path / "b",
                       options={"schedule": False})
    assert b.manifest["validation"]["status"] == "passed"
    info = b.manifest["artifact"]["info"]
    scratch = max(k["workspace_bytes"] for k in info["kernels"])
    assert scratch > 4096
    t = b.runner().time(None, warmup=0, iters=1)
    assert 0 < t["extra"]["workspace_peak_bytes"] <= scratch
    plan = json.loads((b.path / "memory_plan.json").read_text())
    assert any(buf["name"].startswith("scratch") for buf in plan["buffers"])
    assert info["memory"]["arena_bytes"] > cnn_m4.manifest["artifact"]["info"]["memory"]["arena_bytes"]
