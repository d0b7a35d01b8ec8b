"""Our presets give the same output tiled and untiled (issue 9 §6): local upsampling only."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from test_engine_infer import engine, make_frames

from satvsr_cli.engine.memory import default_overlap
from satvsr_cli.io.base import Frame
from satvsr_cli.models import build_model

WINDOW = [0, 1, 2, 3, 4]


def _randomised(name: str, **kw) -> torch.nn.Module:
    """The preset with every parameter random (no zero-started convs hiding the trunk)."""
    torch.manual_seed(0)
    net = build_model(name, **kw)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.normal_(0.0, 1.0 / fan_in**0.5)
    return net.eval()


def _max_tile_diff(net: torch.nn.Module, overlap: int = 32) -> int:
    frames = make_frames(5, 72, 72)
    full = engine(net, tile=None).upscale(2, WINDOW, frames).astype(np.int32)
    tiled_engine = engine(net, tile=overlap + 8, overlap=overlap)
    tiled = tiled_engine.upscale(2, WINDOW, frames).astype(np.int32)
    assert tiled_engine.plan is not None and tiled_engine.plan.n_tiles > 1
    return int(np.abs(tiled - full).max())


@pytest.mark.parametrize("name", ["lgtd_small", "msdtgp_small", "lgtd_base"])
def test_presets_tiled_equals_untiled(name):
    # at the network's automatic overlap (48 LR px for lgtd_base's deeper head)
    assert _max_tile_diff(_randomised(name), default_overlap(name)) <= 1  # within 1/255


def test_the_deeper_quality_preset_needs_its_wider_overlap():
    assert default_overlap("lgtd_base") == 48 and default_overlap("lgtd_small") == 32
    assert _max_tile_diff(_randomised("lgtd_base"), 32) > 1


def test_upstream_align_corners_interpolation_depends_on_the_tile():
    # the paper configurations keep upstream's align_corners=True; it is what the presets avoid
    assert _max_tile_diff(_randomised("lgtd_small", local_upsample=False)) > 1


TAIPEI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "satvideo" / "taipei"


@pytest.mark.skipif(not (TAIPEI / "eval").is_dir(), reason="../shared/data (taipei/eval) is absent")
@pytest.mark.parametrize("wid", ["lgtd_base.v1", "lgtd_small.v2"])
def test_shipped_presets_tiled_equals_untiled_on_real_frames(wid):
    from satvsr_cli.weights import load_weights, read_manifest

    net, manifest = load_weights(read_manifest(wid).path)
    frames = {i: Frame(i, iio.imread(p)[:96, :96, :3], None) for i, p in
              enumerate(sorted((TAIPEI / "eval" / "LR4x" / "000").glob("*.png"))[:5])}
    ov = default_overlap(manifest.network)
    full = engine(net.eval(), tile=None).upscale(2, WINDOW, frames).astype(np.int32)
    tiled_engine = engine(net, tile=ov + 16, overlap=ov)
    tiled = tiled_engine.upscale(2, WINDOW, frames).astype(np.int32)
    assert tiled_engine.plan is not None and tiled_engine.plan.n_tiles > 1
    assert int(np.abs(tiled - full).max()) <= 1  # within 1/255
