"""Targets as data: every shipped file loads; validation refuses bad values and lists the allowed ones."""

import tomllib

import pytest

from edgecc.errors import TargetError
from edgecc.targets import BACKENDS, TARGETS_DIR, get_target, list_targets, parse_target

HOST = tomllib.loads((TARGETS_DIR / "host.toml").read_text())


@pytest.mark.parametrize("path", sorted(TARGETS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_target_file_loads(path):
    t = get_target(path.stem)
    assert t.name == path.stem
    assert t.default_backend in t.backends and not t.backends[t.default_backend].refused
    assert t.cpu.triple.count("-") >= 2, "triples are arch-vendor-os[-abi]"
    for name, cfg in t.backends.items():
        assert name in BACKENDS
        if not cfg.refused:
            assert cfg.flags or cfg.tvm_target or cfg.options or name in ("micro", "tensorrt"), name


def test_host_target_serves_iree_and_tvm():
    host = get_target("host")
    assert "--iree-llvmcpu-target-cpu=host" in host.backend("iree").flags
    assert host.backend("tvm").tvm_target["kind"] == "llvm"
    assert host.kind == "cpu" and host.cpu.triple.startswith("x86_64")


def test_unknown_target_lists_valid_ones():
    with pytest.raises(TargetError, match=r"unknown target 'nope'; valid targets: .*host"):
        get_target("nope")


def test_unknown_backend_and_not_serving():
    host = get_target("host")
    with pytest.raises(TargetError, match="unknown backend 'onnx'; known backends: iree, tvm"):
        host.backend("onnx")
    with pytest.raises(TargetError, match="backend 'micro' does not serve target 'host'; use one of: iree, tvm"):
        host.backend("micro")


def test_refused_backend_says_why():
    data = {**HOST, "backends": {**HOST["backends"], "tvm": {"refused": "no LLVM for this CPU"}}}
    t = parse_target(data)
    with pytest.raises(TargetError, match="refused for target 'host': no LLVM for this CPU"):
        t.backend("tvm")


@pytest.mark.parametrize("patch, message", [
    ({"kind": "fpga"}, "'fpga' is not one of cpu, gpu, mcu"),
    ({"colour": "red"}, "unknown key.*colour; allowed: name"),
    ({"default_backend": "micro"}, "default_backend: 'micro' is not one of iree, tvm"),
    ({"backends": {"npu": {}}}, "'npu' is not one of iree, tvm, tensorrt, micro"),
    ({"transport": {"kind": "carrier-pigeon"}}, "'carrier-pigeon' is not one of local, qemu-user"),
    ({"accelerator": {"kind": "tpu"}}, "'tpu' is not one of cuda, vulkan, opencl"),
    ({"cpu": {"cpu": "x"}}, "missing required key 'triple'"),
    ({"boards": {"b": {"ram_kb": 1}}}, "must state ram_kb and flash_kb"),
])
def test_validation_lists_allowed_values(patch, message):
    with pytest.raises(TargetError, match=message):
        parse_target({**HOST, **patch})


def test_targets_are_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        get_target("host").name = "x"


def test_list_targets_has_host():
    assert "host" in list_targets()
