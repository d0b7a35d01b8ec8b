"""PSNR and MATLAB-style SSIM as the MSDTGP/LGTD papers report them (RGB, full frame, by default).

Conventions (``docs/networks.md`` §11):

- ``pred`` may be a float array with values outside the data range (a network's unclamped output
  × 255); ``gt`` is usually uint8. Everything is computed in float64.
- PSNR of identical images is ``inf`` (upstream code returns 100; satvsr does not).
- SSIM is Wang et al.'s, as MATLAB's reference ``ssim_index`` computes it: an 11×11 Gaussian window
  with σ = 1.5 (normalised), K1 = 0.01, K2 = 0.03, ``L = data_range``, the "valid" region only
  (no padding), the map mean per channel, then the mean over channels.
- ``y_channel=True`` scores the BT.601 luma as MATLAB's ``rgb2ycbcr`` computes it,
  ``Y = 16 + (65.481·R + 128.553·G + 24.966·B)/255`` for R, G, B in [0, 255] (Y in [16, 235]);
  for another ``data_range`` the inputs are scaled to [0, 1] first and Y is scaled back.
- ``crop_border=N`` removes N pixels from every side (after the Y conversion) before scoring.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
Y_COEFFS = (65.481, 128.553, 24.966)  # MATLAB rgb2ycbcr, BT.601, inputs in [0, 1]
Y_OFFSET = 16.0


def rgb_to_y(img: npt.ArrayLike, *, data_range: float = 255.0) -> F64:
    """MATLAB ``rgb2ycbcr`` luma of an ``(H, W, 3)`` RGB image, in the same range as the input.

    For ``data_range=255``: ``Y = 16 + (65.481·R + 128.553·G + 24.966·B) / 255``.
    """
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects an (H, W, 3) RGB image, got shape {a.shape}")
    x = a / data_range
    y = Y_OFFSET + Y_COEFFS[0] * x[..., 0] + Y_COEFFS[1] * x[..., 1] + Y_COEFFS[2] * x[..., 2]
    return y * (data_range / 255.0)


def _prepare(
    pred: npt.ArrayLike, gt: npt.ArrayLike, data_range: float, crop_border: int, y_channel: bool
) -> tuple[F64, F64]:
    """Validate, convert to float64 ``(H, W, C)``, apply the Y conversion and the border crop."""
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape} vs ground truth {g.shape}")
    if p.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {p.shape}")
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be positive, got {data_range}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    pf = p.astype(np.float64, copy=False)
    gf = g.astype(np.float64, copy=False)
    if pf.ndim == 2:
        pf, gf = pf[..., None], gf[..., None]
    if y_channel:
        if pf.shape[-1] != 3:
            raise ValueError(f"y_channel needs 3-channel RGB images, got {pf.shape[-1]} channels")
        pf = rgb_to_y(pf, data_range=data_range)[..., None]
        gf = rgb_to_y(gf, data_range=data_range)[..., None]
    if crop_border:
        h, w = pf.shape[:2]
        if 2 * crop_border >= min(h, w):
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {h}×{w} image")
        pf = pf[crop_border:-crop_border, crop_border:-crop_border]
        gf = gf[crop_border:-crop_border, crop_border:-crop_border]
    return pf, gf


def mse(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    data_range: float = 255.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float:
    """Mean squared error over every pixel and channel (after the optional Y conversion/crop)."""
    p, g = _prepare(pred, gt, data_range, crop_border, y_channel)
    d = p - g
    return float(np.mean(d * d))


def psnr(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    data_range: float = 255.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB: ``10·log10(L² / MSE)`` with ``L = data_range``.

    Returns ``inf`` for identical images.

    Raises:
        ValueError: shape mismatch, bad ndim, non-positive data range, negative or too large crop.
    """
    err = mse(pred, gt, data_range=data_range, crop_border=crop_border, y_channel=y_channel)
    if err == 0.0:
        return math.inf
    return float(10.0 * math.log10(data_range * data_range / err))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> F64:
    """The normalised 1-D Gaussian; its outer product is MATLAB's ``fspecial('gaussian', 11, 1.5)``."""
    r = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - r
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: F64, g: F64) -> F64:
    """Separable 'valid' correlation of ``x`` (H, W, ...) with ``g`` along axes 0 and 1."""
    k = g.shape[0]
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    rows = g[0] * x[0:h]
    for i in range(1, k):
        rows = rows + g[i] * x[i : i + h]
    out = g[0] * rows[:, 0:w]
    for i in range(1, k):
        out = out + g[i] * rows[:, i : i + w]
    return out


def ssim_per_channel(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    data_range: float = 255.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> F64:
    """MATLAB-style SSIM of each channel (``(C,)``; one value with ``y_channel``)."""
    p, g = _prepare(pred, gt, data_range, crop_border, y_channel)
    if p.shape[0] < SSIM_WINDOW or p.shape[1] < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} (after cropping), "
            f"got {p.shape[0]}×{p.shape[1]}"
        )
    win = gaussian_window()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_p = _filter_valid(p, win)
    mu_g = _filter_valid(g, win)
    s_pp = _filter_valid(p * p, win) - mu_p * mu_p
    s_gg = _filter_valid(g * g, win) - mu_g * mu_g
    s_pg = _filter_valid(p * g, win) - mu_p * mu_g
    num = (2.0 * mu_p * mu_g + c1) * (2.0 * s_pg + c2)
    den = (mu_p * mu_p + mu_g * mu_g + c1) * (s_pp + s_gg + c2)
    result: F64 = (num / den).mean(axis=(0, 1))
    return result


def ssim(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    data_range: float = 255.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float:
    """MATLAB-style SSIM (11×11 Gaussian σ 1.5, valid region), averaged over the channels.

    Raises:
        ValueError: shape mismatch, bad ndim, an image smaller than the window after cropping.
    """
    per = ssim_per_channel(
        pred, gt, data_range=data_range, crop_border=crop_border, y_channel=y_channel
    )
    return float(per.mean())


__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "Y_COEFFS",
    "Y_OFFSET",
    "gaussian_window",
    "mse",
    "psnr",
    "rgb_to_y",
    "ssim",
    "ssim_per_channel",
]
