"""The photometric alignment loss: warping, offset → flow, and its effect on LGTD's offsets."""

from __future__ import annotations

import numpy as np
import torch

from satvsr_cli.models import build_model
from satvsr_cli.models.alignment import offset_flow, photometric_alignment_loss, warp
from satvsr_cli.models.registry import TINY_OVERRIDES


def _texture(h=24, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h + 4, w + 4, generator=g)
    return torch.nn.functional.avg_pool2d(x, 3, 1)[..., :h, :w]  # smooth a little


def test_warp_by_an_integer_flow_is_a_shift():
    x = _texture()
    flow = torch.zeros(1, 2, 24, 24)
    flow[:, 0] = 1.0  # sample one row below
    y = warp(x, flow)
    assert torch.allclose(y[..., :-1, :], x[..., 1:, :], atol=1e-6)
    assert torch.allclose(warp(x, torch.zeros_like(flow)), x, atol=1e-6)


def test_offset_flow_is_the_mean_shift_over_groups_and_taps():
    g, k, h, w = 2, 9, 4, 5
    off = torch.zeros(1, g, k, 2, h, w)
    off[:, :, :, 0] = 0.5
    off[:, 0, :, 1] = 2.0  # group 0 looks 2 px right, group 1 does not
    flow = offset_flow(off.reshape(1, 2 * g * k, h, w), k)
    assert torch.allclose(flow[:, 0], torch.full((1, h, w), 0.5))
    assert torch.allclose(flow[:, 1], torch.full((1, h, w), 1.0))


def test_loss_is_small_for_the_true_motion_and_large_otherwise():
    big = _texture(40, 40)
    ref = big[..., 8:32, 8:32]
    nbr = big[..., 9:33, 8:32]  # content moved up one row: sample one row above
    true = torch.zeros(1, 2, 24, 24)
    true[:, 0] = -1.0
    good = photometric_alignment_loss(nbr, ref, true)
    bad = photometric_alignment_loss(nbr, ref, torch.zeros_like(true))
    assert float(good) < 0.5 * float(bad)


def test_lgtd_alignment_loss_follows_recorded_offsets_and_trains_them():
    torch.manual_seed(0)
    net = build_model("lgtd_small", **{**TINY_OVERRIDES["lgtd_small"], "max_offset": 8.0})
    assert net.alignment_loss(torch.zeros(1, 5, 3, 16, 16)) is None  # nothing recorded
    net.record_alignment(True)
    big = _texture(48, 48, seed=1)
    # a clip drifting one LR px per frame to the right
    clip = torch.stack([big[0, :, 8:24, 8 + 2 - t : 24 + 2 - t] for t in range(5)])[None]
    opt = torch.optim.Adam(net.msd.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        net(clip)
        loss = net.alignment_loss(clip)
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]  # the offsets learn the motion
    net.record_alignment(False)
    net(clip)
    assert net.alignment_loss(clip) is None
    assert np.isfinite(losses).all()
