"""The squeeze stages on digits-cnn (trained on real data) without a toolchain: Torch-Pruning removes channels for
real (MACs, parameters and the arena drop, torch.export still works), SVD factorization keeps the function and only
factorizes where MACs drop, distillation is deterministic and needs no labels, int8 ends the pipeline; the static
per-layer costs match hand-computed MACs; the spec parser and order checks refuse what cannot work."""

import numpy as np
import pytest

from edgecc.compiler.squeeze.spec import StageSpec, check_pipeline, parse_squeeze, resolve_squeeze
from edgecc.errors import ModelError, UsageError

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    from edgecc.models.datasets import get_dataset
    from edgecc.models.digits import trained_digits_cnn

    return trained_digits_cnn(), get_dataset("digits")


def _x(ds, n=None):
    return torch.from_numpy(ds.x_test[:n])


def top1(net, ds) -> float:
    with torch.no_grad():
        return float(np.mean(net(_x(ds)).argmax(1).numpy() == ds.y_test))


# ---------------------------------------------------------------- profile (static costs)

def test_layer_costs_match_hand_computed_macs(digits):
    from edgecc.compiler.squeeze.profile import layer_costs, model_costs

    net, ds = digits
    rows = {r.layer: r for r in layer_costs(net, _x(ds, 1))}
    assert rows["features.0"].macs == 16 * 8 * 8 * 1 * 9
    assert rows["features.2"].macs == 32 * 8 * 8 * 16 * 9
    assert rows["features.5"].macs == 32 * 4 * 4 * 32 * 9
    assert rows["fc"].macs == 10 * 128 and rows["fc"].params == 1290
    assert rows["features.2"].activation_bytes == 32 * 8 * 8 * 4
    totals = model_costs(net, _x(ds, 1))
    assert totals["macs"] == 452_864 and totals["params"] == 15_338 and totals["weight_bytes"] == 4 * 15_338
    # peak of live intermediates: conv2's output (32x8x8) and the ReLU's after it (no in-place fusion), fp32
    assert totals["arena_bytes"] == 4 * (32 * 64 * 2)


# ---------------------------------------------------------------- prune

def test_prune_removes_channels_for_real(digits):
    from edgecc.compiler.squeeze.profile import model_costs
    from edgecc.compiler.squeeze.prune import prune_channels

    net, ds = digits
    x1 = _x(ds, 1)
    pruned, info = prune_channels(net, x1, 0.5)
    assert pruned.features[0].out_channels == 8 and pruned.features[2].weight.shape[:2] == (16, 8)
    assert pruned.fc.out_features == 10 and info["kept_output_layer"] == "fc"
    assert info["channels"]["features.5"] == [32, 16]
    before, after = model_costs(net, x1), model_costs(pruned, x1)
    assert after["macs"] * 2 <= before["macs"] and after["arena_bytes"] < before["arena_bytes"]
    assert net.features[0].out_channels == 16  # the original is left alone
    torch.export.export(pruned, (x1,))  # a plain model every backend exports
    # per-layer ratios over the global one; 0 keeps a layer
    p2, info2 = prune_channels(net, x1, 0.5, {"features.0": 0.0, "features.2": 0.25})
    assert p2.features[0].out_channels == 16 and p2.features[2].out_channels == 24
    assert p2.features[5].out_channels == 16
    p3, _ = prune_channels(net, x1, 0.4, round_to=8)  # 16*0.6 = 9.6 and 32*0.6 = 19.2 channels, rounded to 8s
    assert [p3.features[i].out_channels % 8 for i in (0, 2, 5)] == [0, 0, 0]


def test_taylor_importance_uses_the_data(digits):
    from edgecc.compiler.squeeze.prune import prune_channels

    net, ds = digits
    mag, _ = prune_channels(net, _x(ds, 1), 0.5, importance="magnitude")
    tay, info = prune_channels(net, _x(ds, 1), 0.5, importance="taylor", data=ds.calibration, labels=ds.y_calibration)
    assert info["importance"] == "taylor" and tay.features[2].out_channels == 16
    assert not torch.equal(mag.features[2].weight, tay.features[2].weight)  # another ranking, other channels
    with pytest.raises(ModelError, match="taylor needs data"):
        prune_channels(net, _x(ds, 1), 0.5, importance="taylor")


def test_untraceable_model_names_the_layer():
    from edgecc.compiler.frontends import load_model
    from edgecc.compiler.squeeze.prune import prune_channels
    from tests.conftest import DATA

    m = load_model(f"{DATA / 'squeeze_factory.py'}:split_channels")
    with pytest.raises(ModelError, match=r"^Torch-Pruning did not trace .* in layer mix: ") as e:
        prune_channels(m.module, torch.from_numpy(m.example_inputs[0]), 0.5)
    assert "\n" not in str(e.value)
    # keeping the split conv out leaves nothing Torch-Pruning may remove: said so, not a silent no-op
    with pytest.raises(ModelError, match="removed no channels"):
        prune_channels(m.module, torch.from_numpy(m.example_inputs[0]), 0.5, {"conv": 0})


# ---------------------------------------------------------------- lowrank

def test_lowrank_keeps_the_function_and_only_factorizes_where_macs_drop(digits):
    from edgecc.compiler.squeeze.lowrank import factorize_lowrank
    from edgecc.compiler.squeeze.profile import model_costs

    net, ds = digits
    x = _x(ds, 64)
    full, info = factorize_lowrank(net, 0.99)  # the ranks that keep 99% of the energy would not lower MACs
    assert info["layers"] == {} and set(info["kept"]) == {"features.0", "features.2", "features.5", "fc"}
    low, info = factorize_lowrank(net, 0.8)
    assert info["layers"], info
    for name, d in info["layers"].items():
        assert d["rank"] < d["full_rank"] and d["macs_fraction"] < 1
        seq = low.get_submodule(name)
        assert isinstance(seq, torch.nn.Sequential) and len(seq) == 2
    assert model_costs(low, x[:1])["macs"] < model_costs(net, x[:1])["macs"]
    mid, _ = factorize_lowrank(net, 0.95)
    with torch.no_grad():
        err = [float((m(x) - net(x)).abs().max()) for m in (low, mid, full)]
    assert err[0] > err[1] > err[2] == 0  # more energy kept, closer to the original (distill closes the rest)
    # an exact-rank factorization reproduces the layer: a rank-2 linear layer becomes two layers, same outputs
    lin = torch.nn.Sequential(torch.nn.Linear(64, 32))
    with torch.no_grad():
        lin[0].weight.copy_(torch.randn(32, 2) @ torch.randn(2, 64))
    f, finfo = factorize_lowrank(lin, 0.9)
    assert finfo["layers"]["0"]["rank"] <= 2
    xi = torch.randn(5, 64)
    torch.testing.assert_close(f(xi), lin(xi), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- distill

def test_distill_recovers_accuracy_deterministically(digits):
    from edgecc.compiler.squeeze.distill import DistillOptions, distill
    from edgecc.compiler.squeeze.prune import prune_channels

    net, ds = digits
    pruned, _ = prune_channels(net, _x(ds, 1), 0.5)
    opts = DistillOptions(epochs=3)
    lines = []
    a, info = distill(pruned, net, ds.calibration, ds.y_calibration, opts, lines.append)
    b, _ = distill(pruned, net, ds.calibration, ds.y_calibration, opts)
    assert len(lines) == 3 and lines[0].startswith("distill epoch 1/3: loss ")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)  # seeded, one thread: the same weights
    assert top1(a, ds) > top1(pruned, ds) + 0.3 and info["labels"] is True
    # no labels: the teacher's outputs are the only targets
    c, cinfo = distill(pruned, net, ds.calibration[:512], None, DistillOptions(epochs=3))
    assert cinfo["labels"] is False and cinfo["loss"] == "T^2*KL(teacher)"
    assert top1(c, ds) > top1(pruned, ds) + 0.2
    with pytest.raises(ModelError, match="distill needs data"):
        distill(pruned, net, None)


# ---------------------------------------------------------------- the pipeline, ending in int8

def test_pipeline_rows_end_in_the_existing_int8_stage(digits, tmp_path):
    from edgecc.compiler.frontends import load_model
    from edgecc.compiler.squeeze.pipeline import run_squeeze
    from edgecc.compiler.squeeze.quant import QuantizedModel

    net, ds = digits
    np.save(tmp_path / "x.npy", ds.calibration[:300])  # unlabelled inputs are enough
    stages, data = resolve_squeeze("prune=0.5,distill:epochs=2,int8", str(tmp_path))
    r = run_squeeze(load_model("digits-cnn"), stages, data)
    assert [row["stage"] for row in r.rows] == ["original", "prune", "distill", "int8"]
    assert isinstance(r.model, QuantizedModel) and r.model.fp32.module is r.fp32
    orig, pruned, dist, q = r.rows
    assert orig["max_abs_error_vs_original"] == 0 and orig["top1"] == pytest.approx(top1(net, ds), abs=1e-4)
    assert pruned["macs"] * 2 <= orig["macs"] and q["macs"] == dist["macs"]
    assert q["weight_bytes"] * 6 <= orig["weight_bytes"]
    assert dist["did"]["labels"] is False and dist["top1"] > pruned["top1"]
    assert q["did"]["calibration"]["source"] == f"folder {tmp_path}"


# ---------------------------------------------------------------- the spec and its checks

def test_spec_forms(tmp_path):
    assert parse_squeeze("prune=0.5:importance=taylor,lowrank=0.8,distill:epochs=3,int8") == [
        StageSpec("prune", {"ratio": 0.5, "importance": "taylor"}), StageSpec("lowrank", {"energy": 0.8}),
        StageSpec("distill", {"epochs": 3}), StageSpec("int8", {})]
    f = tmp_path / "p.toml"
    f.write_text('[squeeze]\nstages = ["prune", "distill", "int8"]\ndata = "digits"\n'
                 '[squeeze.prune]\nratio = 0.25\nlayers = { "features.0" = 0.5 }\n[squeeze.distill]\nepochs = 2\n')
    stages, data = resolve_squeeze(str(f))
    assert data == "digits" and stages[0].get("layers") == {"features.0": 0.5} and stages[0].get("ratio") == 0.25
    assert resolve_squeeze(str(f), "other")[1] == "other"  # --squeeze-data wins over the file's


@pytest.mark.parametrize("spec,data,err,needle", [
    ("prune=1.5", "", UsageError, "prune ratio=1.5 is out of range"),
    ("prune=0", "", UsageError, "out of range"),
    ("lowrank=2", "", UsageError, "lowrank energy=2 is out of range"),
    ("prune=0.5:importance=random", "", ModelError, "importance 'random' is not one of magnitude, taylor"),
    ("shrink=0.5", "", UsageError, "unknown squeeze stage 'shrink'"),
    ("prune=0.5:speed=3", "", UsageError, "unknown prune option(s) speed"),
    ("int8,prune=0.5", "digits", UsageError, "int8 must be the last squeeze stage"),
    ("distill,prune=0.5", "digits", UsageError, "distill fine-tunes a pruned or factorized model"),
    ("prune=0.5,prune=0.3", "", UsageError, "given 2 times"),
    ("prune=0.5,distill", "", ModelError, "squeeze stage distill needs data"),
    ("prune=0.5,int8", "", ModelError, "int8 needs data"),
    ("prune=0.5:importance=taylor", "", ModelError, "Taylor importance"),
    ("prune=0.5,,int8", "", UsageError, "empty stage"),
    ("prune=0.5:round_to=0", "", UsageError, "round_to=0"),
    ("int8=3", "digits", UsageError, "takes no value"),
])
def test_pipelines_that_cannot_work(spec, data, err, needle):
    with pytest.raises(err) as e:
        resolve_squeeze(spec, data)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_toml_pipelines(tmp_path):
    f = tmp_path / "p.toml"
    for text, needle in [("[other]\n", "no [squeeze] section"), ("[squeeze]\nstages = 3\n", "list of stage names"),
                         ('[squeeze]\nstages = ["prune"]\nspeed = 1\n', "unknown key(s) speed"),
                         ("[squeeze\n", "not valid TOML")]:
        f.write_text(text)
        with pytest.raises(UsageError, match=needle.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            resolve_squeeze(str(f))
    with pytest.raises(UsageError, match="no stages"):
        check_pipeline([], "")


def test_measured_kernels_pair_with_their_layers_by_weight_size():
    from edgecc.compiler.squeeze.profile import attach_measured

    def layers():
        return [{"layer": "conv1", "macs": 100, "weight_elements": 1152}, {"layer": "bn", "macs": 0},
                {"layer": "conv2", "macs": 200, "weight_elements": 2304},
                {"layer": "shortcut", "macs": 10, "weight_elements": 128}]

    # TVM runs the shortcut conv before conv2: sizes of the kernels' constant arguments pair them right
    kernels = [{"step": 0, "kernel": "fused_conv2d_add_relu", "share": 0.3, "arg_elements": [1152, 16]},
               {"step": 1, "kernel": "fused_conv2d4_add", "share": 0.1, "arg_elements": [128, 16]},
               {"step": 2, "kernel": "fused_conv2d1_add_relu", "share": 0.6, "arg_elements": [2304, 16]}]
    rows = layers()
    assert attach_measured(rows, kernels)
    assert [(r["layer"], r.get("measured_step")) for r in rows] == [
        ("conv1", 0), ("bn", None), ("conv2", 2), ("shortcut", 1)]
    # without argument sizes (edgecc's int8 driver: graph order) they pair in order
    rows = layers()
    assert attach_measured(rows, [{k: v for k, v in kern.items() if k != "arg_elements"} for kern in kernels])
    assert rows[2]["measured_step"] == 1
    # a kernel count that does not match, or a weight no kernel holds: no pairing claimed
    assert not attach_measured(layers(), kernels[:2])
    assert not attach_measured(layers(), [{**k, "arg_elements": [7]} for k in kernels])
