"""The micro backend's arena planner and AOT emitter, without any toolchain (numpy only)."""

import random

import numpy as np
import pytest

from edgecc.compiler.micro.emit import c_prefix, emit_aot_c
from edgecc.compiler.micro.lower import KernelCall, LoweredModel, TensorInfo
from edgecc.compiler.micro.plan import (
    ArenaPlan,
    Buffer,
    InPlace,
    check_plan,
    inplace_aliases,
    live_bytes_lower_bound,
    model_buffers,
    plan_arena,
)


def test_chain_reuses_memory_and_meets_the_lower_bound():
    # a -> b -> c -> d: only neighbours are alive together, so a/c and b/d can share
    bufs = [Buffer("a", 1000, 0, 1), Buffer("b", 1000, 1, 2), Buffer("c", 1000, 2, 3), Buffer("d", 1000, 3, 4)]
    plan = plan_arena(bufs)
    check_plan(plan)
    assert plan.size == plan.lower_bound == 2 * 1008  # 1000 rounded up to 16-byte alignment
    assert plan.offsets["a"] == plan.offsets["c"] and plan.offsets["b"] == plan.offsets["d"]


def test_buffers_alive_together_never_share():
    bufs = [Buffer(f"x{i}", 64 * (i + 1), 0, 5) for i in range(5)]
    plan = plan_arena(bufs)
    check_plan(plan)
    assert plan.size == sum(b.size for b in bufs) == plan.lower_bound


def test_residual_block_keeps_the_skip_tensor_alive():
    # x (0..3) is read again by the add at step 3; y and z come and go in between
    bufs = [Buffer("x", 4096, 0, 3), Buffer("y", 4096, 1, 2), Buffer("z", 4096, 2, 3), Buffer("w", 4096, 3, 4)]
    plan = plan_arena(bufs)
    check_plan(plan)
    assert plan.lower_bound == 3 * 4096
    assert plan.offsets["x"] not in (plan.offsets["y"], plan.offsets["z"])
    assert plan.size == plan.lower_bound


@pytest.mark.parametrize("seed", range(20))
def test_random_lifetimes_are_valid_and_never_beat_the_bound(seed):
    rng = random.Random(seed)
    bufs = []
    for i in range(rng.randint(1, 40)):
        first = rng.randint(0, 30)
        bufs.append(Buffer(f"b{i}", rng.choice([0, 4, 100, 4096, 65536]) + rng.randint(0, 64), first,
                           first + rng.randint(0, 8)))
    plan = plan_arena(bufs)
    check_plan(plan)
    assert plan.size >= plan.lower_bound == live_bytes_lower_bound(bufs)
    assert plan.size <= sum((b.size + 15) // 16 * 16 for b in bufs)


def test_check_plan_rejects_overlapping_live_buffers():
    bufs = [Buffer("a", 64, 0, 2), Buffer("b", 64, 1, 3)]
    bad = ArenaPlan({"a": 0, "b": 32}, 96, 128, bufs)
    with pytest.raises(AssertionError, match="overlap"):
        check_plan(bad)


def test_plan_refuses_duplicate_names_and_bad_lifetimes():
    with pytest.raises(ValueError):
        plan_arena([Buffer("a", 1, 0, 0), Buffer("a", 1, 1, 1)])
    with pytest.raises(ValueError):
        plan_arena([Buffer("a", 1, 3, 1)])


# ------------------------------------------------------------- in-place outputs (plan.inplace_aliases)

SIZES = {n: 64 for n in "abcdefg"}


def test_an_input_read_later_is_never_overwritten():
    # step 2 may write c over a or b; a is read again at step 3, so only b (dying at step 2) can take c
    uses = [["a"], ["a", "b"], ["a", "b", "c"], ["a", "c"]]
    assert inplace_aliases(uses, SIZES, [InPlace(2, "c", "a"), InPlace(2, "c", "b")]) == {"c": "b"}
    # with a read again nowhere, the first candidate wins; with both read later, nothing is shared
    assert inplace_aliases(uses[:3] + [["c"]], SIZES, [InPlace(2, "c", "a"), InPlace(2, "c", "b")]) == {"c": "a"}
    assert inplace_aliases(uses + [["b"]], SIZES, [InPlace(2, "c", "b")]) == {}


def test_inplace_chains_follow_the_merged_lifetime():
    # b over a at step 1, c over b at step 2: one buffer for a, b, c; d may not then take it at step 2,
    # because the merged buffer (through c) is still read at step 3
    uses = [["a"], ["a", "b"], ["b", "c", "d"], ["c", "d"]]
    cands = [InPlace(1, "b", "a"), InPlace(2, "c", "b"), InPlace(2, "d", "b")]
    assert inplace_aliases(uses, SIZES, cands) == {"b": "a", "c": "a"}


def test_inplace_needs_a_fresh_output_that_fits():
    uses = [["a", "b"], ["a", "b", "c"], ["c"]]
    # b already exists before step 1: it is not the step's output
    assert inplace_aliases(uses, SIZES, [InPlace(1, "b", "a")]) == {}
    assert inplace_aliases(uses, {**SIZES, "c": 65}, [InPlace(1, "c", "a")]) == {}  # bigger than a's buffer
    assert inplace_aliases(uses, SIZES, [InPlace(1, "c", "a")]) == {"c": "a"}


def _buffers(uses, alias, size=4096):
    first, last = {}, {}
    for i, names in enumerate(uses):
        for n in names:
            r = alias.get(n, n)
            first.setdefault(r, i)
            last[r] = i
    return [Buffer(n, size, first[n], last[n]) for n in first]


def test_a_fused_residual_written_over_the_shortcut_plans_below_the_tensor_level_bound():
    # a residual block, out = conv2(conv1(x)) + x. As kernels: x, y = conv1(x), z = conv2(y) all meet at step 2.
    tensor_level = [["x"], ["x", "y"], ["x", "y", "z"], ["x", "z", "out"], ["out"]]
    before = plan_arena(_buffers(tensor_level, {}))
    # with the add in conv2's epilogue z never exists, and out may take x's buffer (x dies at that step)
    fused = [["x"], ["x", "y"], ["x", "y", "out"], ["out"]]
    alias = inplace_aliases(fused, {n: 4096 for n in ("x", "y", "out")}, [InPlace(2, "out", "x")])
    assert alias == {"out": "x"}
    after = plan_arena(_buffers(fused, alias))
    check_plan(after)
    assert (before.size, before.lower_bound) == (3 * 4096, 3 * 4096)
    assert (after.size, after.lower_bound) == (2 * 4096, 2 * 4096)
    # without the alias the fused form still needs three (x, y and out meet at step 2)
    assert plan_arena(_buffers(fused, {})).size == 3 * 4096


def _toy_lowered():
    f32 = "float32"
    tensors = {
        "input0": TensorInfo("input0", (1, 4), f32, "input"),
        "w0": TensorInfo("w0", (4, 4), f32, "const", value=np.arange(16, dtype=np.float32).reshape(4, 4)),
        "t1": TensorInfo("t1", (1, 4), f32, "temp"),
        "t2": TensorInfo("t2", (4,), f32, "view", alias_of="t1"),
        "t3": TensorInfo("t3", (4,), f32, "temp"),
        "t4": TensorInfo("t4", (4,), f32, "output"),
    }
    calls = [KernelCall("dense", ["input0", "w0", "t1"]), KernelCall("relu", ["t2", "t3"], workspace_bytes=48),
             KernelCall("neg", ["t3", "t4"])]
    return LoweredModel("toy-net", None, calls, tensors, ["input0"], ["t4"])


def test_model_buffers_follow_views_and_add_kernel_scratch():
    bufs = {b.name: b for b in model_buffers(_toy_lowered())}
    assert set(bufs) == {"t1", "t3", "scratch1"}  # input, weights and output live outside the arena
    assert (bufs["t1"].first, bufs["t1"].last) == (0, 1)  # the view t2 keeps t1 alive until step 1
    assert (bufs["scratch1"].first, bufs["scratch1"].last, bufs["scratch1"].size) == (1, 1, 48)


def test_emitted_c_has_const_weights_one_arena_and_calls_in_order():
    lowered = _toy_lowered()
    plan = plan_arena(model_buffers(lowered))
    symbols = {k: "__tvm_ffi_" + k for k in ("dense", "relu", "neg")}
    model_c, model_h = emit_aot_c(lowered, symbols, plan, "test note")
    assert c_prefix("toy-net") == "toy_net"
    assert "int toy_net_run(void* const inputs[], void* const outputs[]);" in model_h
    assert f"#define TOY_NET_ARENA_BYTES {plan.size}" in model_h
    assert "#define TOY_NET_INPUT0_BYTES 16" in model_h and "#define TOY_NET_OUTPUT0_ELEMS 4" in model_h
    assert "static const float w0_data[16]" in model_c and "15.0f" in model_c
    assert model_c.count("static uint8_t arena[") == 1
    assert "malloc" not in model_c
    order = [model_c.index(f"(edgecc_kernel_fn)__tvm_ffi_{k}") for k in ("dense", "relu", "neg")]
    assert order == sorted(order)
    # the view shares its source's arena slot; the scratch window is set right before the kernel that uses it
    assert f"static const DLTensor t2 = {{arena + {plan.offsets['t1']}," in model_c
    assert f"edgecc_workspace_set(arena + {plan.offsets['scratch1']}, 48);" in model_c
    # caller buffers are bound at run time
    assert "input0.data = inputs[0];" in model_c and "t4.data = outputs[0];" in model_c
