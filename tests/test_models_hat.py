"""Tests for the HAT reconstruction head (networks.md §7.6): windows, masks, biases, OCAB, drop path."""

from __future__ import annotations

import itertools

import pytest
import torch

from satvsr_cli.models.hat import (
    HAT,
    OCAB,
    DropPath,
    WindowAttention,
    overlap_position_index,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_hat(**kw) -> HAT:
    torch.manual_seed(0)
    args = {
        "in_chans": 8,
        "embed_dim": 12,
        "n_groups": 2,
        "depth": 2,
        "num_heads": 2,
        "window_size": 4,
        "num_feat": 4,
    }
    args.update(kw)
    return HAT(**args).eval()


def test_window_partition_roundtrip_and_order():
    x = torch.arange(2 * 8 * 12 * 3, dtype=torch.float32).view(2, 8, 12, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 4, 4, 3)
    torch.testing.assert_close(windows[1], x[0, 0:4, 4:8])  # row-major window order
    torch.testing.assert_close(windows[3], x[0, 4:8, 0:4])
    torch.testing.assert_close(window_reverse(windows, 4, 8, 12), x)


@pytest.mark.parametrize("ws", [2, 4, 16])
def test_relative_position_index(ws):
    index = relative_position_index(ws)
    n = ws * ws
    assert index.shape == (n, n)
    coords = [(i, j) for i in range(ws) for j in range(ws)]
    for a in (0, n // 2, n - 1):
        for b in range(n):
            dy = coords[a][0] - coords[b][0] + ws - 1
            dx = coords[a][1] - coords[b][1] + ws - 1
            assert index[a, b] == dy * (2 * ws - 1) + dx
    assert index.min() == 0 and index.max() == (2 * ws - 1) ** 2 - 1
    assert torch.all(index.diagonal() == (ws - 1) * (2 * ws - 1) + ws - 1)


@pytest.mark.parametrize("ws,ows", [(4, 6), (16, 24)])
def test_overlap_position_index_is_a_bijection_per_query(ws, ows):
    index = overlap_position_index(ws, ows)
    size = ws + ows - 1
    assert index.shape == (ws * ws, ows * ows)
    assert index.min() >= 0 and index.max() < size * size
    for row in index:
        assert row.unique().numel() == ows * ows  # distinct offsets per key
    # the key at the query's own absolute position maps to offset (0, 0)
    pad = (ows - ws) // 2
    zero = (pad + ws - 1) * size + (pad + ws - 1)
    for i, j in [(0, 0), (ws - 1, 2), (ws - 1, ws - 1)]:
        assert index[i * ws + j, (i + pad) * ows + (j + pad)] == zero


def test_shifted_window_mask():
    ws, shift = 4, 2
    mask = shifted_window_mask(12, 8, ws, shift, torch.device("cpu"))
    assert mask.shape == (3 * 2, 16, 16)
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    assert torch.all(mask == mask.transpose(1, 2))
    assert torch.all(mask.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(mask[0] == 0)  # top-left window lies in one region
    last = mask[-1]  # bottom-right window straddles 4 regions: 4 tokens each
    assert (last[0] == 0).sum() == 4
    single = shifted_window_mask(4, 4, ws, shift, torch.device("cpu"))
    assert single.shape == (1, 16, 16) and (single[0, 0] == 0).sum() == 4


def test_masked_window_attention_does_not_mix_regions():
    torch.manual_seed(0)
    attn = WindowAttention(6, 4, 2).double()
    mask = shifted_window_mask(4, 4, 4, 2, torch.device("cpu")).double()
    x = torch.rand(1, 16, 6, dtype=torch.float64)
    y = attn(x, mask)
    x2 = x.clone()
    x2[0, 0] += torch.randn(6, dtype=torch.float64)  # token (0, 0): region of rows 0-1, cols 0-1
    y2 = attn(x2, mask)
    same_region = mask[0, 0] == 0
    assert not torch.allclose(y2[0, same_region], y[0, same_region])
    torch.testing.assert_close(y2[0, ~same_region], y[0, ~same_region], rtol=0, atol=1e-12)
    # without a mask everything mixes
    assert not torch.allclose(attn(x2)[0, ~same_region], attn(x)[0, ~same_region])


def test_ocab_receptive_field_is_the_overlapping_window():
    torch.manual_seed(0)
    ocab = OCAB(6, 4, 2).double()  # query windows 4×4, key/value windows 6×6 (pad 1)
    h = w = 12
    x = torch.rand(1, h * w, 6, dtype=torch.float64)
    y = ocab(x, (h, w)).view(h, w, 6)
    x2 = x.clone()
    x2[0, 0 * w + 3] += torch.randn(
        6, dtype=torch.float64
    )  # pixel (0, 3): inside query window (0, 0), in the kv window of (0, 1)
    y2 = ocab(x2, (h, w)).view(h, w, 6)
    changed = (y2 - y).abs().sum(-1) > 1e-12
    assert changed[0:4, 0:4].all()  # its own query window
    assert changed[0:4, 4:8].all()  # the neighbour whose 6×6 kv window covers column 3
    assert not changed[0:4, 8:12].any()  # kv window of (0, 2) starts at column 7
    assert not changed[4:12].any()  # kv windows of row 1 start at row 3


def test_hat_shapes_and_size_check():
    hat = tiny_hat()
    with torch.no_grad():
        y = hat(torch.rand(2, 8, 8, 12))
    assert y.shape == (2, 3, 32, 48) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="multiples of 4"):
        hat(torch.rand(1, 8, 6, 8))
    with pytest.raises(ValueError, match="divisible"):
        HAT(embed_dim=10, num_heads=3)


def test_hat_block_layout_and_drop_path_schedule():
    hat = tiny_hat(n_groups=3, depth=4, drop_path_rate=0.1)
    blocks = [b for layer in hat.layers for b in layer.residual_group.blocks]
    assert [b.shift_size for b in blocks[:4]] == [0, 2, 0, 2]
    rates = [b.drop_path.p for b in blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    steps = [b - a for a, b in itertools.pairwise(rates)]
    assert all(s == pytest.approx(0.1 / 11) for s in steps)
    assert all(b.conv_scale == 0.01 for b in blocks)


def test_drop_path():
    dp = DropPath(0.5)
    x = torch.ones(400, 3, 2)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    torch.manual_seed(0)
    y = dp(x)
    per_sample = y.view(400, -1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)  # whole sample dropped
    assert 120 < (per_sample[:, 0] == 0).sum() < 280
    assert torch.equal(DropPath(0.0).train()(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_hat_train_mode_is_stochastic_eval_is_not():
    hat = tiny_hat(drop_path_rate=0.5)
    x = torch.rand(4, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(hat(x), hat(x))
        hat.train()
        torch.manual_seed(1)
        a = hat(x)
        torch.manual_seed(2)
        b = hat(x)
    assert not torch.equal(a, b)


def test_hat_mask_cache_per_size():
    hat = tiny_hat()
    with torch.no_grad():
        hat(torch.rand(1, 8, 8, 8))
        hat(torch.rand(1, 8, 4, 12))
    assert {k[:2] for k in hat._mask_cache} == {(8, 8), (4, 12)}
