"""Growing trained small weights into the larger quality preset (models/grow.py, train --init)."""

from __future__ import annotations

import pytest
import torch
from test_train_data import make_jilin

from satvsr_cli.errors import WeightsError
from satvsr_cli.models import TINY_OVERRIDES, build_model
from satvsr_cli.models.grow import GrowError, grow_into
from satvsr_cli.train.loop import prepare
from satvsr_cli.weights import load_weights, save_weights

SMALL = dict(TINY_OVERRIDES["lgtd_small"])
# wider head, two extra residual blocks, wider pixel-shuffle upsampler
LARGE = dict(SMALL, head_nf=SMALL["head_nf"] + 4, n_head_blocks=SMALL["n_head_blocks"] + 2,
             upsample_nf=SMALL["upsample_nf"] + 2)


def _trained_small(seed: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_model("lgtd_small", **SMALL)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.03 * torch.randn_like(p))  # no parameter left at its initial value
    return net.eval()


def test_grown_network_gives_the_same_output_and_can_learn():
    small = _trained_small()
    torch.manual_seed(0)
    large = build_model("lgtd_base", **LARGE)
    clip = torch.rand(2, 5, 3, 12, 12)
    with torch.no_grad():
        before = large.eval()(clip)
    report = grow_into(large, small.state_dict())
    assert report["identity"] == ["reconstruction.1", "reconstruction.2"]
    assert "embedding.weight" in report["widened"] and "upsample.0.weight" in report["widened"]
    with torch.no_grad():
        want, got = small(clip), large(clip)
    assert not torch.allclose(before, want, atol=1e-3)  # the comparison below can fail
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # the new capacity is not stuck at its start: every new block gets a gradient
    large.train()
    (large(clip) - torch.rand_like(got)).abs().mean().backward()
    for name in report["identity"]:
        grad = large.get_submodule(name).conv2.weight.grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_grow_refuses_what_does_not_embed():
    small = _trained_small()
    narrower = build_model("lgtd_base", **dict(LARGE, head_nf=SMALL["head_nf"] - 2))
    with pytest.raises(GrowError, match="cannot embed shape"):
        grow_into(narrower, small.state_dict())
    state = {k: v for k, v in small.state_dict().items() if k != "conv_last.weight"}
    with pytest.raises(GrowError, match=r"conv_last\.weight: not in the smaller network"):
        grow_into(build_model("lgtd_base", **LARGE), state)
    state = dict(small.state_dict(), **{"extra.weight": torch.zeros(1)})
    with pytest.raises(GrowError, match=r"no tensor 'extra\.weight'"):
        grow_into(build_model("lgtd_base", **LARGE), state)

def test_train_init_grows_small_weights_into_the_quality_preset(tmp_path):
    root = make_jilin(tmp_path / "train", {"000": 5}, size=(32, 32), lr=True, seed=1)
    small = _trained_small()
    path = save_weights(small, tmp_path / "small.safetensors", network="lgtd_small",
                        config=SMALL, data={}, recipe={}, metrics={})
    overrides = {"data.sources": [str(root)], "data.patch": 8, "train.batch": 2,
                 "train.iters": 1, "train.ckpt_every": 100, "train.threads": 1, "train.ema": 0.0,
                 "train.lr": 1e-12, "model.kwargs": LARGE, "train.init": str(path)}
    res = prepare(tmp_path / "run", model="lgtd_base", log=lambda _: None,
                  overrides=overrides).fit()
    large, manifest = load_weights(res.export)
    init = manifest.extra["init"]
    assert manifest.network == "lgtd_base" and init["grown_from"] == "lgtd_small"
    assert init["grow"]["identity"] == 2
    clip = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():  # one step at lr 1e-12: still the small network's output
        torch.testing.assert_close(large.eval()(clip), small(clip), rtol=0, atol=1e-4)
    # another family does not grow: the error names both networks
    bad = prepare(tmp_path / "bad", model="msdtgp_small", log=lambda _: None,
                  overrides=dict(overrides, **{"model.kwargs": TINY_OVERRIDES["msdtgp_small"]}))
    with pytest.raises(WeightsError, match="holds 'lgtd_small' weights"):
        bad.fit()
