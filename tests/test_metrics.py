"""Tests for PSNR / MATLAB-style SSIM, against scikit-image and numpy references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from satvsr_cli.metrics import gaussian_window, mse, psnr, rgb_to_y, ssim, ssim_per_channel

skm = pytest.importorskip("skimage.metrics")


def _pair(seed: int = 0, shape=(48, 40, 3), float_pred: bool = False):
    rng = np.random.default_rng(seed)
    # structured content (smooth ramps + texture), not just noise, so SSIM is not near 0
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None]
    base = base + rng.normal(0, 10, size=shape)
    gt = np.clip(np.round(base), 0, 255).astype(np.uint8)
    pred = gt.astype(np.float64) + rng.normal(0, 6, size=shape)
    if float_pred:
        pred = pred * 1.02 - 3.0  # unclamped: values below 0 and above 255 occur
    else:
        pred = np.clip(np.round(pred), 0, 255).astype(np.uint8)
    return pred, gt


def _sk_ssim(pred, gt, data_range=255.0):
    kw = {
        "gaussian_weights": True,
        "sigma": 1.5,
        "use_sample_covariance": False,
        "data_range": data_range,
    }
    if np.ndim(pred) == 3:
        kw["channel_axis"] = -1
    return skm.structural_similarity(np.asarray(pred, np.float64), np.asarray(gt, np.float64), **kw)


def _ref_y(img):
    """MATLAB rgb2ycbcr luma for R, G, B in [0, 255], written out as a matrix product."""
    t = np.array([65.481, 128.553, 24.966]) / 255.0
    return 16.0 + np.asarray(img, np.float64) @ t


# ---------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf():
    _, gt = _pair()
    assert psnr(gt, gt) == math.inf
    assert psnr(gt.astype(np.float64), gt) == math.inf


def test_psnr_known_mse():
    gt = np.zeros((8, 8, 3), np.uint8)
    pred = np.ones((8, 8, 3), np.float64)  # MSE = 1
    assert psnr(pred, gt) == pytest.approx(20 * math.log10(255.0), abs=1e-12)
    pred2 = np.full((8, 8, 3), 4.0)  # MSE = 16
    assert psnr(pred2, gt) == pytest.approx(20 * math.log10(255.0 / 4.0), abs=1e-12)
    assert mse(pred2, gt) == 16.0


@pytest.mark.parametrize("float_pred", [False, True])
def test_psnr_matches_skimage(float_pred):
    pred, gt = _pair(1, float_pred=float_pred)
    ref = skm.peak_signal_noise_ratio(
        gt.astype(np.float64), pred.astype(np.float64), data_range=255
    )
    assert psnr(pred, gt) == pytest.approx(ref, abs=1e-10)


def test_psnr_is_not_clamped():
    gt = np.full((4, 4, 3), 255, np.uint8)
    over = np.full((4, 4, 3), 265.0)  # an unclamped network output above the range still counts
    assert psnr(over, gt) == pytest.approx(20 * math.log10(255.0 / 10.0))


def test_psnr_data_range_one():
    pred, gt = _pair(2, float_pred=True)
    assert psnr(pred / 255.0, gt / 255.0, data_range=1.0) == pytest.approx(psnr(pred, gt), abs=1e-9)


def test_psnr_crop_border():
    pred, gt = _pair(3, float_pred=True)
    ref = skm.peak_signal_noise_ratio(
        gt[4:-4, 4:-4].astype(np.float64), pred[4:-4, 4:-4], data_range=255
    )
    assert psnr(pred, gt, crop_border=4) == pytest.approx(ref, abs=1e-10)
    # an error confined to the border disappears with the crop
    g = np.full((20, 20, 3), 100, np.uint8)
    p = g.astype(np.float64)
    p[:2] += 50
    p[:, -2:] -= 30
    assert psnr(p, g) < 30 and psnr(p, g, crop_border=2) == math.inf


def test_shape_mismatch_and_bad_arguments_raise():
    a = np.zeros((16, 16, 3))
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(a, np.zeros((16, 15, 3)))
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(a, np.zeros((16, 16)))
    with pytest.raises(ValueError):
        psnr(a, a, crop_border=8)
    with pytest.raises(ValueError):
        psnr(a, a, crop_border=-1)
    with pytest.raises(ValueError):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), y_channel=True)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))


# ---------------------------------------------------------------- Y channel


def test_y_formula_matches_matlab_rgb2ycbcr():
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.full((1, 1, 3), 255.0))[0, 0] == pytest.approx(235.0)
    # MATLAB: rgb2ycbcr(double([255 0 0])/255)*255 → Y = 81.481
    assert rgb_to_y(np.array([[[255.0, 0.0, 0.0]]]))[0, 0] == pytest.approx(81.481, abs=1e-9)
    _pred, gt = _pair(4)
    np.testing.assert_allclose(rgb_to_y(gt), _ref_y(gt), atol=1e-10)
    np.testing.assert_allclose(rgb_to_y(gt / 255.0, data_range=1.0), _ref_y(gt) / 255.0, atol=1e-12)


def test_y_channel_psnr_and_ssim_against_references():
    pred, gt = _pair(5, float_pred=True)
    yp, yg = _ref_y(pred), _ref_y(gt)
    ref_p = skm.peak_signal_noise_ratio(yg, yp, data_range=255)
    assert psnr(pred, gt, y_channel=True) == pytest.approx(ref_p, abs=1e-10)
    assert ssim(pred, gt, y_channel=True) == pytest.approx(_sk_ssim(yp, yg), abs=1e-10)
    # Y then crop
    c = 3
    ref_c = skm.peak_signal_noise_ratio(yg[c:-c, c:-c], yp[c:-c, c:-c], data_range=255)
    assert psnr(pred, gt, y_channel=True, crop_border=c) == pytest.approx(ref_c, abs=1e-10)
    assert ssim(pred, gt, y_channel=True, crop_border=c) == pytest.approx(
        _sk_ssim(yp[c:-c, c:-c], yg[c:-c, c:-c]), abs=1e-10
    )


# ---------------------------------------------------------------- SSIM


def test_gaussian_window_is_fspecial():
    g = gaussian_window()
    w2 = np.outer(g, g)
    x = np.arange(-5, 6)
    ref = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(w2, ref / ref.sum(), atol=1e-15)
    assert w2.shape == (11, 11) and w2.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("float_pred", [False, True])
@pytest.mark.parametrize("seed", [6, 7])
def test_ssim_matches_skimage(float_pred, seed):
    pred, gt = _pair(seed, float_pred=float_pred)
    ours = ssim(pred, gt)
    assert ours == pytest.approx(_sk_ssim(pred, gt), abs=1e-10)
    assert 0.2 < ours < 0.999  # a meaningful fixture, not a degenerate one


def test_ssim_per_channel_and_gray():
    pred, gt = _pair(8)
    per = ssim_per_channel(pred, gt)
    assert per.shape == (3,)
    for c in range(3):
        assert per[c] == pytest.approx(_sk_ssim(pred[..., c], gt[..., c]), abs=1e-10)
    assert ssim(pred[..., 0], gt[..., 0]) == pytest.approx(per[0], abs=1e-12)


def test_ssim_identical_is_one_and_crop_matches_skimage():
    pred, gt = _pair(9, float_pred=True)
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert ssim(pred, gt, crop_border=4) == pytest.approx(
        _sk_ssim(pred[4:-4, 4:-4], gt[4:-4, 4:-4]), abs=1e-10
    )
    assert ssim(pred, gt, crop_border=4) != pytest.approx(ssim(pred, gt), abs=1e-6)


def test_ssim_data_range_one():
    pred, gt = _pair(10, float_pred=True)
    assert ssim(pred / 255, gt / 255, data_range=1.0) == pytest.approx(ssim(pred, gt), abs=1e-10)
