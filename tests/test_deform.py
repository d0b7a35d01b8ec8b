"""Tests for the modulated deformable convolution (networks.md §4)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satvsr_cli.models import deform
from satvsr_cli.models.deform import (
    DCNSep,
    deform_conv2d_pure,
    get_backend,
    modulated_deform_conv2d,
    set_backend,
)


@pytest.fixture(autouse=True)
def _pure_backend():
    """Pure path, one thread (small tensors; immune to OpenMP oversubscription on a busy box)."""
    previous = deform._backend
    threads = torch.get_num_threads()
    set_backend("pure")
    torch.set_num_threads(1)
    yield
    deform._backend = previous
    torch.set_num_threads(threads)


def _bilinear_zero(img: np.ndarray, y: float, x: float) -> float:
    """DCNv2 bilinear sample of a (H, W) image: corners outside the image read zero."""
    h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    value = 0.0
    for yy, wy in ((y0, 1.0 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1.0 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                value += wy * wx * img[yy, xx]
    return value


def reference_dcn(x, offset, mask, weight, bias):
    """Naive per-pixel DCNv2 (3×3, stride 1, pad 1, dilation 1) written from networks.md §4.1."""
    xn, on, mn = x.numpy(), offset.numpy(), mask.numpy()
    wn, bn = weight.numpy(), bias.numpy()
    b, c, h, w = xn.shape
    c_out = wn.shape[0]
    g = on.shape[1] // 18
    cg = c // g
    out = np.zeros((b, c_out, h, w))
    for n in range(b):
        for py in range(h):
            for px in range(w):
                v = np.zeros((c, 9))  # sampled, modulated values per (c_in, tap)
                for i in range(3):
                    for j in range(3):
                        k = 3 * i + j
                        for gi in range(g):
                            dy = on[n, gi * 18 + 2 * k, py, px]
                            dx = on[n, gi * 18 + 2 * k + 1, py, px]
                            m = mn[n, gi * 9 + k, py, px]
                            sy, sx = py - 1 + i + dy, px - 1 + j + dx
                            for ci in range(gi * cg, (gi + 1) * cg):
                                v[ci, k] = _bilinear_zero(xn[n, ci], sy, sx) * m
                out[n, :, py, px] = wn.reshape(c_out, c * 9) @ v.reshape(c * 9) + bn
    return torch.from_numpy(out)


def _random_case(b, c, h, w, g, c_out=3, spread=2.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=gen, dtype=torch.float64)
    # fractional offsets large enough to push many samples outside the image
    offset = (torch.rand(b, 18 * g, h, w, generator=gen, dtype=torch.float64) - 0.5) * 2 * spread
    mask = torch.rand(b, 9 * g, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_out, c, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(c_out, generator=gen, dtype=torch.float64)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize("h,w", [(5, 6), (1, 7), (4, 1), (1, 1)])
@pytest.mark.parametrize("g", [1, 2, 4])
def test_zero_offset_unit_mask_equals_conv2d(h, w, g):
    x, _, _, weight, bias = _random_case(2, 8, h, w, g, c_out=5)
    offset = torch.zeros(2, 18 * g, h, w, dtype=torch.float64)
    mask = torch.ones(2, 9 * g, h, w, dtype=torch.float64)
    out = deform_conv2d_pure(x, offset, mask, weight, bias)
    expected = F.conv2d(x, weight, bias, padding=1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("h,w", [(5, 6), (1, 7), (4, 1)])
@pytest.mark.parametrize("g", [2, 4])
def test_random_offsets_match_loop_reference(h, w, g):
    x, offset, mask, weight, bias = _random_case(2, 8, h, w, g, seed=h * 10 + w + g)
    # make sure the case really exercises out-of-image samples
    taps = torch.arange(9)
    base_y = (torch.arange(h)[None, :] - 1 + taps[:, None] // 3).double()
    sample_y = offset.view(2, g, 9, 2, h, w)[:, :, :, 0] + base_y[:, :, None]
    assert ((sample_y <= -1) | (sample_y >= h)).any()
    out = deform_conv2d_pure(x, offset, mask, weight, bias)
    expected = reference_dcn(x, offset, mask, weight, bias)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_offset_channel_layout_is_interleaved_dy_dx():
    """Δy = +1 on every even channel (and Δx = 0) samples one row further down."""
    x, _, _, weight, bias = _random_case(1, 8, 6, 5, 2, c_out=4)
    offset = torch.zeros(1, 36, 6, 5, dtype=torch.float64)
    offset[:, 0::2] = 1.0  # channel g·18 + 2k holds Δy
    mask = torch.ones(1, 18, 6, 5, dtype=torch.float64)
    out = deform_conv2d_pure(x, offset, mask, weight, bias)
    # taps read rows y .. y+2 instead of y−1 .. y+1: zero padding 0 on top, 2 at the bottom
    expected = F.conv2d(F.pad(x, (1, 1, 0, 2)), weight, bias)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # and Δx = −1 on odd channels reads one column to the left
    offset = torch.zeros(1, 36, 6, 5, dtype=torch.float64)
    offset[:, 1::2] = -1.0
    out = deform_conv2d_pure(x, offset, mask, weight, bias)
    expected = F.conv2d(F.pad(x, (2, 0, 1, 1)), weight, bias)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_mask_layout_group_major():
    """Zeroing the mask of group 1 only removes the contribution of that group's channels."""
    x, offset, mask, weight, bias = _random_case(1, 8, 4, 4, 2, c_out=3)
    mask[:, 9:] = 0.0
    x_zeroed = x.clone()
    x_zeroed[:, 4:] = 0.0
    out = deform_conv2d_pure(x, offset, mask, weight, bias)
    out_ref = deform_conv2d_pure(x_zeroed, offset, mask, weight, bias)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)


def test_gradcheck_tiny():
    x, offset, mask, weight, bias = _random_case(1, 8, 6, 6, 2, c_out=4, spread=1.3, seed=3)
    args = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    assert torch.autograd.gradcheck(
        lambda *a: deform_conv2d_pure(*a), args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True
    )


def test_gradcheck_full_mode_input_offset_mask():
    x, offset, mask, weight, bias = _random_case(1, 8, 6, 6, 1, c_out=2, spread=1.3, seed=4)
    args = [t.clone().requires_grad_(True) for t in (x, offset, mask)]
    assert torch.autograd.gradcheck(
        lambda a, o, m: deform_conv2d_pure(a, o, m, weight, bias), args, eps=1e-6, atol=1e-5
    )


def test_batch_size_zero():
    x, offset, mask, weight, bias = _random_case(1, 8, 3, 3, 2)
    out = deform_conv2d_pure(x[:0], offset[:0], mask[:0], weight, bias)
    assert out.shape == (0, 3, 3, 3)


def test_shape_errors():
    x, offset, mask, weight, bias = _random_case(1, 8, 3, 3, 2)
    with pytest.raises(ValueError, match="offset shape"):
        deform_conv2d_pure(x, offset[..., :2], mask, weight, bias)
    with pytest.raises(ValueError, match="mask shape"):
        deform_conv2d_pure(x, offset, mask[:, :9], weight, bias)
    off4, mask4 = torch.zeros(1, 72, 3, 3).double(), torch.ones(1, 36, 3, 3).double()
    with pytest.raises(ValueError, match="divisible"):
        deform_conv2d_pure(x[:, :6], off4, mask4, weight[:, :6], bias)
    with pytest.raises(ValueError, match="multiple"):
        deform_conv2d_pure(x, offset[:, :17], mask, weight, bias)


def test_float32_agrees_with_float64():
    x, offset, mask, weight, bias = _random_case(2, 8, 7, 9, 4, seed=11)
    out64 = deform_conv2d_pure(x, offset, mask, weight, bias)
    out32 = deform_conv2d_pure(*(t.float() for t in (x, offset, mask, weight, bias)))
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-4)


def test_dcnsep_parameters_and_init():
    dcn = DCNSep(64, 64, 3, 8)
    names = {n: tuple(p.shape) for n, p in dcn.named_parameters()}
    assert names == {
        "weight": (64, 64, 3, 3),
        "bias": (64,),
        "conv_offset_mask.weight": (216, 64, 3, 3),
        "conv_offset_mask.bias": (216,),
    }
    assert sum(p.numel() for p in dcn.parameters()) == 161_560
    bound = 1 / math.sqrt(64 * 9)
    assert dcn.weight.abs().max() <= bound
    assert dcn.weight.std() > bound / 3  # actually uniform, not zero
    with pytest.raises(ValueError, match="divisible"):
        DCNSep(60, 64, 3, 8)


def test_dcnsep_forward_uses_guide_and_sigmoid_mask():
    dcn = DCNSep(8, 6, 3, 2).double()
    x = torch.rand(1, 8, 5, 5, dtype=torch.float64)
    guide = torch.rand(1, 8, 5, 5, dtype=torch.float64)
    # zero offset/mask conv → offsets 0 and mask sigmoid(0) = 0.5: half a plain conv (plus bias)
    out = dcn(x, guide)
    expected = F.conv2d(0.5 * x, dcn.weight, dcn.bias, padding=1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.nn.init.normal_(dcn.conv_offset_mask.weight, std=0.5)
    offset, mask = dcn.offsets_and_mask(guide)
    assert offset.shape == (1, 36, 5, 5) and mask.shape == (1, 18, 5, 5)
    assert (mask > 0).all() and (mask < 1).all()
    torch.testing.assert_close(
        dcn(x, guide), modulated_deform_conv2d(x, offset, mask, dcn.weight, dcn.bias)
    )


def test_offset_guard_warns(caplog):
    dcn = DCNSep(8, 8, 3, 2)
    x = torch.rand(1, 8, 4, 4)
    with caplog.at_level(logging.WARNING, logger="satvsr_cli.models.deform"):
        dcn(x, x)
    assert not caplog.records
    with torch.no_grad():
        dcn.conv_offset_mask.bias[:36] = 150.0
    with caplog.at_level(logging.WARNING, logger="satvsr_cli.models.deform"):
        dcn(x, x)
    assert any("mean |offset|" in r.getMessage() for r in caplog.records)


def test_backend_selection():
    assert get_backend() == "pure"
    with pytest.raises(ValueError, match="unknown deform backend"):
        set_backend("cuda")  # type: ignore[arg-type]
    if not deform.torchvision_available():
        with pytest.raises(ValueError, match="torchvision"):
            set_backend("torchvision")
        set_backend("auto")
        assert get_backend() == "pure"


def test_torchvision_parity():
    pytest.importorskip("torchvision")
    if not deform.torchvision_available():
        pytest.skip("torchvision is installed but its deform_conv2d does not import cleanly")
    from torchvision.ops import deform_conv2d

    x, offset, mask, weight, bias = _random_case(2, 8, 6, 7, 4, seed=5)
    expected = deform_conv2d_pure(x, offset, mask, weight, bias)
    out = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    set_backend("torchvision")
    torch.testing.assert_close(modulated_deform_conv2d(x, offset, mask, weight, bias), expected)
    args = [t[:1, :, :6, :6].clone().requires_grad_(True) for t in (x, offset, mask)]
    assert torch.autograd.gradcheck(
        lambda a, o, m: deform_conv2d(a, o, weight, bias, padding=1, mask=m), args
    )


def test_bfloat16_samples_at_full_precision_positions():
    """Low-precision inputs: the sampling grid is built in float32 (W = 640 would alias in bf16)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 8, 3, 640, generator=gen)
    offset = torch.rand(1, 36, 3, 640, generator=gen) * 3
    mask = torch.rand(1, 18, 3, 640, generator=gen)
    weight = torch.randn(4, 8, 3, 3, generator=gen)
    bias = torch.randn(4, generator=gen)
    args = [t.bfloat16().double() for t in (x, offset, mask, weight, bias)]  # same inputs, exact
    expected = deform_conv2d_pure(*args)
    out = deform_conv2d_pure(*(t.bfloat16() for t in (x, offset, mask, weight, bias)))
    assert out.dtype == torch.bfloat16
    assert (out.double() - expected).abs().max() < 0.1  # bf16 rounding of cols/outputs only
