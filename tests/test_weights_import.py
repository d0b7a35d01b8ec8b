"""`satvsr weights import`: upstream-format state dicts (built here, names as models.md) round trip."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.errors import OutputError, WeightsError
from satvsr_cli.models import TINY_OVERRIDES, build_model, lgtd_checkpoint_filter_fn
from satvsr_cli.models.hat import OCAB
from satvsr_cli.models.lgtd import ocab_upstream_shift
from satvsr_cli.weights import load_weights, read_manifest, sha256_file
from satvsr_cli.weights_import import import_checkpoint

OCAB_TABLE = "overlap_attn.relative_position_bias_table"


def _grid(n: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).flatten(1)


def upstream_sa_index(ws: int) -> torch.Tensor:
    """Swin's window index: (Δy + ws − 1)·(2ws − 1) + (Δx + ws − 1), Δ = query − key."""
    q = _grid(ws)
    rel = q[:, :, None] - q[:, None, :] + (ws - 1)
    return rel[0] * (2 * ws - 1) + rel[1]


def upstream_oca_index(ws: int, ows: int) -> torch.Tensor:
    """Upstream HAT's OCAB index: key pixel counted from the key window, offset ws − ows + 1."""
    q, k = _grid(ws), _grid(ows)
    rel = k[:, None, :] - q[:, :, None] + (ws - ows + 1)
    return rel[0] * (ws + ows - 1) + rel[1]  # negative values wrap to the end of the table


def our_oca_index(ws: int, ows: int) -> torch.Tensor:
    """satvsr's: the true offset (k − pad) − q shifted by pad + ws − 1 into [0, ws + ows − 2]."""
    pad = (ows - ws) // 2
    q, k = _grid(ws), _grid(ows)
    rel = (k[:, None, :] - pad) - q[:, :, None] + (pad + ws - 1)
    return rel[0] * (ws + ows - 1) + rel[1]


def to_upstream_table(ours: torch.Tensor, ws: int, ows: int) -> torch.Tensor:
    """The upstream table that gives the same bias for every (query, key) pair as ``ours``."""
    up = torch.full_like(ours, float("nan"))
    up[upstream_oca_index(ws, ows).reshape(-1) % ours.shape[0]] = ours[
        our_oca_index(ws, ows).reshape(-1)
    ]
    assert not torch.isnan(up).any()
    return up


def upstream_lgtd_state(model, *, buffers=True, prefix=""):
    """An upstream-style LGTD state dict of ``model``: dead L-TDM fus, HAT buffers, OCAB layout."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    nf = model.feat_channels
    state["tdm_l.fus.weight"] = torch.randn(nf, 2 * nf, 3, 3)  # the dead 128→64 conv
    state["tdm_l.fus.bias"] = torch.randn(nf)
    if model.head == "hat":
        ws = model.hat.window_size
        ows = model.hat.layers[0].residual_group.overlap_attn.overlap_win_size
        for k in [k for k in state if k.endswith(OCAB_TABLE)]:
            state[k] = to_upstream_table(state[k], ws, ows)
        if buffers:
            state["hat.relative_position_index_SA"] = upstream_sa_index(ws)
            state["hat.relative_position_index_OCA"] = upstream_oca_index(ws, ows)
    else:  # LGTD_arc also builds an unused HAT
        state["hat.conv_first.weight"] = torch.randn(4, nf, 3, 3)
        state["hat.relative_position_index_SA"] = upstream_sa_index(4)
    return {prefix + k: v for k, v in state.items()}


def clip(h=8, w=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 5, 3, h, w, generator=g)


def assert_same_outputs(a, b, x):
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- OCAB layout


def test_ocab_shift_formula_is_880_for_the_default_windows():
    assert ocab_upstream_shift(16, 24) == 880
    for ws, ows in ((16, 24), (4, 6), (8, 12), (2, 4), (6, 10)):
        rows = (ws + ows - 1) ** 2
        table = torch.randn(rows, 3)
        up = to_upstream_table(table, ws, ows)
        # the closed form agrees with the table built pair by pair from the two index rules
        torch.testing.assert_close(torch.roll(up, ocab_upstream_shift(ws, ows), 0), table)


def test_ocab_default_windows_upstream_block_equals_ours_after_mapping():
    torch.manual_seed(0)
    ws, heads = 16, 2
    upstream = OCAB(12, ws, heads).eval()  # an upstream OCAB: upstream index, upstream table
    upstream.relative_position_index = upstream_oca_index(ws, 24)
    with torch.no_grad():
        upstream.relative_position_bias_table.normal_()
    table = upstream.relative_position_bias_table.detach().clone()
    key = "hat.layers.0.residual_group." + OCAB_TABLE
    mapped = lgtd_checkpoint_filter_fn(
        {key: table, "hat.relative_position_index_OCA": upstream_oca_index(ws, 24)}
    )
    assert set(mapped) == {key}
    assert torch.equal(mapped[key], torch.roll(table, 880, dims=0))  # the brief's rule
    ours = OCAB(12, ws, heads).eval()
    sd = {k: v for k, v in upstream.state_dict().items()}
    sd["relative_position_bias_table"] = mapped[key]
    ours.load_state_dict(sd, strict=True)
    x = torch.randn(1, 32 * 32, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, (32, 32)), upstream(x, (32, 32)))
    # without the index buffer the filter assumes the upstream layout: the same roll
    no_buffer = lgtd_checkpoint_filter_fn(
        {key: table, "hat.layers.0.residual_group.blocks.0.attn.relative_position_bias_table":
         torch.zeros(31 * 31, heads)}
    )
    assert torch.equal(no_buffer[key], mapped[key])


def test_lgtd_filter_rejects_bad_index_buffers():
    model = build_model("lgtd", **TINY_OVERRIDES["lgtd"])
    state = upstream_lgtd_state(model)
    bad = dict(state, **{"hat.relative_position_index_SA": upstream_sa_index(4) + 1})
    with pytest.raises(ValueError, match="relative_position_index_SA"):
        lgtd_checkpoint_filter_fn(bad, model)
    bad = dict(state, **{"hat.relative_position_index_OCA": torch.zeros(16, 36, dtype=torch.long)})
    with pytest.raises(ValueError, match="OCA"):
        lgtd_checkpoint_filter_fn(bad, model)
    bad = dict(state, **{"hat.relative_position_index_OCA": torch.zeros(3, 3, dtype=torch.long)})
    with pytest.raises(ValueError, match="shape"):
        lgtd_checkpoint_filter_fn(bad, model)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("buffers", [True, False])
def test_lgtd_hat_round_trip(tmp_path, buffers):
    torch.manual_seed(0)
    cfg = TINY_OVERRIDES["lgtd"]
    source = build_model("lgtd", **cfg)
    pth = tmp_path / "lgtd_upstream.pth"
    torch.save(upstream_lgtd_state(source, buffers=buffers), pth)
    out = import_checkpoint(pth, "lgtd", tmp_path / "lgtd.safetensors", config=cfg)
    net, manifest = load_weights(out)
    assert_same_outputs(source, net, clip())
    src = manifest.extra["imported_from"]
    assert src["file"] == "lgtd_upstream.pth" and src["sha256"] == sha256_file(pth)
    assert "tdm_l.fus.weight" in src["dropped"]
    assert ("hat.relative_position_index_OCA" in src["dropped"]) == buffers


def test_lgtd_resnet_round_trip_with_module_prefix(tmp_path):
    torch.manual_seed(0)
    cfg = TINY_OVERRIDES["lgtd_lite"]
    source = build_model("lgtd_lite", **cfg)
    pth = tmp_path / "lgtd_arc.pth"
    torch.save(upstream_lgtd_state(source, prefix="module."), pth)
    out = import_checkpoint(pth, "lgtd_lite", tmp_path / "lite.safetensors", config=cfg)
    net, manifest = load_weights(out)
    assert_same_outputs(source, net, clip())
    assert manifest.extra["imported_from"]["module_prefix"] is True
    assert "hat.conv_first.weight" in manifest.extra["imported_from"]["dropped"]


def test_msdtgp_dataparallel_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = TINY_OVERRIDES["msdtgp"]
    source = build_model("msdtgp", **cfg)
    pth = tmp_path / "4x_epoch_46.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, pth)
    out = import_checkpoint(pth, "msdtgp", tmp_path / "m.safetensors", config=cfg)
    net, manifest = load_weights(out)
    assert_same_outputs(source, net, clip(6, 7))
    assert manifest.network == "msdtgp" and manifest.extra["imported_from"]["dropped"] == []
    assert manifest.extra["imported_from"]["sha256"] == sha256_file(pth)


def test_nested_state_dict_is_unwrapped(tmp_path):
    torch.manual_seed(0)
    cfg = TINY_OVERRIDES["msdtgp"]
    source = build_model("msdtgp", **cfg)
    pth = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, pth)
    out = import_checkpoint(pth, "msdtgp", tmp_path / "m.safetensors", config=cfg)
    assert_same_outputs(source, load_weights(out)[0], clip())


# --------------------------------------------------------------------------- errors


def test_wrong_model_and_missing_keys_are_one_line(tmp_path):
    torch.manual_seed(0)
    source = build_model("msdtgp", **TINY_OVERRIDES["msdtgp"])
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    pth = tmp_path / "m.pth"
    torch.save(state, pth)
    with pytest.raises(WeightsError) as exc:
        import_checkpoint(pth, "lgtd_lite", tmp_path / "x.safetensors",
                          config=TINY_OVERRIDES["lgtd_lite"])
    msg = str(exc.value)
    assert "\n" not in msg and "missing" in msg and "unexpected" in msg and "in all" in msg
    del state["module.output.conv.bias"]
    state["module.extra.weight"] = torch.zeros(1)
    torch.save(state, pth)
    with pytest.raises(WeightsError, match=r"missing output\.conv\.bias; unexpected extra\.weight"):
        import_checkpoint(pth, "msdtgp", tmp_path / "x.safetensors",
                          config=TINY_OVERRIDES["msdtgp"])
    # another configuration: shapes differ
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, pth)
    with pytest.raises(WeightsError, match="shape mismatch"):
        import_checkpoint(pth, "msdtgp", tmp_path / "x.safetensors",
                          config=dict(TINY_OVERRIDES["msdtgp"], feat=8))
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "x.json").exists()


def test_code_pickles_and_garbage_are_refused(tmp_path):
    pth = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pth)  # a pickled module needs code to load
    with pytest.raises(WeightsError, match="weights_only") as exc:
        import_checkpoint(pth, "msdtgp", tmp_path / "x.safetensors")
    # torch's long message is reduced to its reason, on one short line
    assert "Unsupported global: torch.nn.modules.linear.Linear" in str(exc.value)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 250
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="weights_only"):
        import_checkpoint(tmp_path / "junk.pth", "msdtgp", tmp_path / "x.safetensors")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state dict"):
        import_checkpoint(tmp_path / "list.pth", "msdtgp", tmp_path / "x.safetensors")


def test_cli_import_refuses_overwrite_and_exits_non_zero(tmp_path):
    torch.manual_seed(0)
    source = build_model("msdtgp_small")
    pth = tmp_path / "small.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, pth)
    out = tmp_path / "imported.safetensors"
    runner = CliRunner()
    args = ["weights", "import", str(pth), "--model", "msdtgp_small", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["extra"]["imported_from"]["file"] == "small.pth"
    assert read_manifest(out).network == "msdtgp_small"
    assert_same_outputs(source, load_weights(out)[0], clip())
    result = runner.invoke(app, args)
    assert result.exit_code == OutputError.exit_code
    assert "exists" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    result = runner.invoke(app, ["weights", "import", str(pth), "--model", "lgtd_small",
                                 "-o", str(tmp_path / "y.safetensors")])
    assert result.exit_code == WeightsError.exit_code
    assert len(result.output.strip().splitlines()) == 1 and "missing" in result.output
    assert "it fits --model msdtgp_small" in result.output  # the preset it would fit
    result = runner.invoke(app, ["weights", "import", str(tmp_path / "nope.pth"), "-m", "msdtgp",
                                 "-o", str(tmp_path / "z.safetensors")])
    assert result.exit_code != 0 and "no such file" in result.output
