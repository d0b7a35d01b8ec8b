"""Synthetic satellite-video windows from one still image: platform drift, movers, bicubic ×1/4.

Users without video ground truth can train from single high-resolution images (aerial tiles,
GeoTIFFs). Each training sample is made on the fly, in this order:

1. **Crop first.** A random region of ``R = 4·p + 16`` HR pixels per side is chosen in the image
   (``p`` = LR patch). The centre frame's region is fully inside the image (and fully valid,
   when the image has nodata); the extra 8 HR pixels on each side are the support of the ×1/4
   bicubic kernel, so that the LR patch is computed with real context, not border clamping.
2. **Platform drift.** Frame ``t`` of the ``T``-frame window looks at the scene displaced by
   ``D_t`` (LR px; the centre frame has ``D = 0``): ``D_t = (t − c)·v + W_t − W_c``, where ``v``
   is a constant velocity (speed uniform in ``[0, max_speed]``, random direction) and ``W`` a
   random walk (per-frame steps ~ N(0, jitter²), clipped at 3σ). ``drift="constant"`` keeps
   only ``v``, ``"random_walk"`` only ``W``, ``"mixed"`` (default) both. With the defaults the
   per-frame motion is 0–2 LR px, as in real staring-satellite video (Taipei: 1–2 px).
3. **Exact sub-pixel warp, on the crop only.** Each frame is resampled at HR from the image
   block around the crop: the integer part of ``4·D_t`` is an index offset, the fractional part
   a separable 4-tap Keys cubic (a = −0.5) interpolation. Integer shifts, including the centre
   frame, are therefore copies, bit for bit. Pixels that a displaced frame needs from outside
   the image are mirrored (only near the border of small images; never in the GT).
4. **Moving objects** (optional, ``object_prob``). 1..``max_objects`` vehicle-like soft-edged
   rectangles (3–12 × 2–4 HR px, bright, dark or coloured) move in a straight line along their
   heading at up to ``object_speed`` LR px per frame over the ground, on top of the drift. They
   are drawn analytically at their sub-pixel positions (area coverage per pixel), after the warp.
5. **Quantise and degrade.** Each frame is rounded to uint8 (as real GT is), optionally blurred
   (``blur`` σ in HR px; off by default), and downscaled by the MATLAB-exact bicubic ×1/4
   (:func:`satvsr_cli.resize.imresize`, the same generator as the Jilin-189 ``LR4x`` frames),
   then the ``p × p`` centre is kept. Optional Gaussian noise (``noise`` σ in grey levels; off by
   default) is added before the final rounding to uint8.
6. **GT** is the centre frame's ``4p × 4p`` HR crop (with its objects), uint8.

Images are first downsampled by ``gsd_factor`` with the same MATLAB bicubic (e.g. 3 for
UC Merced's 0.3 m tiles, to approach Jilin-1's ≈1 m), so that objects have satellite-video size
in the HR frames; see :mod:`satvsr_cli.train.data` for image loading and value scaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from satvsr_cli.resize import imresize
from satvsr_cli.train.config import SynthConfig

CONTEXT = 8  # HR pixels of real context on each side for the ×1/4 bicubic kernel (half-width 8)
SCALE = 4

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def region_size(patch: int) -> int:
    """HR side of the region a synthetic LR patch of side ``patch`` needs."""
    return SCALE * patch + 2 * CONTEXT


def max_patch_for(height: int, width: int, multiple: int = 4) -> int:
    """The largest LR patch (a multiple of ``multiple``) whose region fits an image."""
    p = (min(height, width) - 2 * CONTEXT) // SCALE
    return max(0, (p // multiple) * multiple)


def _keys(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    ax = np.abs(x)
    return np.where(
        ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1,
        np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0),
    )


def _mirror(idx: npt.NDArray[np.intp], n: int) -> npt.NDArray[np.intp]:
    """Mirror indices into ``[0, n)`` (edge pixel repeated, as numpy's ``symmetric`` pad)."""
    period = 2 * n
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - 1 - idx, idx)


def shifted_region(img: U8, top: int, left: int, size: int, dy: float, dx: float) -> F32:
    """``img`` sampled at ``(top + y + dy, left + x + dx)`` for ``y, x`` in ``[0, size)``.

    Separable Keys cubic (a = −0.5) interpolation; an integer ``(dy, dx)`` is an exact copy.
    Out-of-image taps are mirrored. Returns float32 ``(size, size, C)``.
    """
    h, w = img.shape[:2]
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    rows = _mirror(np.arange(top + iy - 1, top + iy + size + 3), h)
    cols = _mirror(np.arange(left + ix - 1, left + ix + size + 3), w)
    block = img[rows[:, None], cols[None, :]].astype(np.float32)  # (size+4, size+4, C)
    if fy == 0.0:
        tmp = block[1 : 1 + size]
    else:
        wy = _keys(fy - np.arange(-1, 3, dtype=np.float64)).astype(np.float32)
        tmp = sum(wy[j] * block[j : j + size] for j in range(4))
    if fx == 0.0:
        out = tmp[:, 1 : 1 + size]
    else:
        wx = _keys(fx - np.arange(-1, 3, dtype=np.float64)).astype(np.float32)
        out = sum(wx[j] * tmp[:, j : j + size] for j in range(4))
    return np.ascontiguousarray(out, dtype=np.float32)


def drift_path(rng: np.random.Generator, frames: int, cfg: SynthConfig) -> npt.NDArray[np.float64]:
    """Per-frame platform displacement ``(T, 2)`` (dy, dx) in LR px, zero at the centre frame."""
    c = frames // 2
    t = np.arange(frames, dtype=np.float64) - c
    pos = np.zeros((frames, 2))
    if cfg.drift in ("constant", "mixed") and cfg.max_speed > 0:
        speed = rng.uniform(0.0, cfg.max_speed)
        ang = rng.uniform(0.0, 2 * math.pi)
        pos += t[:, None] * speed * np.array([math.sin(ang), math.cos(ang)])
    if cfg.drift in ("random_walk", "mixed") and cfg.jitter > 0:
        steps = np.clip(rng.normal(0.0, cfg.jitter, (frames - 1, 2)), -3 * cfg.jitter, 3 * cfg.jitter)
        walk = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
        pos += walk - walk[c]
    return pos


@dataclass(frozen=True)
class Mover:
    """A vehicle-like rectangle: centre at the centre frame (HR px, region coordinates)."""

    cy: float
    cx: float
    vy: float  # HR px per frame over the ground
    vx: float
    half_len: float
    half_wid: float
    angle: float
    colour: tuple[float, float, float]
    alpha: float


def random_movers(rng: np.random.Generator, size: int, cfg: SynthConfig) -> list[Mover]:
    """Zero to ``max_objects`` movers somewhere in a region of ``size`` HR px."""
    if cfg.max_objects <= 0 or rng.random() >= cfg.object_prob:
        return []
    movers = []
    for _ in range(int(rng.integers(1, cfg.max_objects + 1))):
        ang = rng.uniform(0.0, math.pi)
        speed = SCALE * rng.uniform(0.0, cfg.object_speed) * (1 if rng.random() < 0.5 else -1)
        kind = rng.random()
        if kind < 0.4:
            colour = tuple(float(v) for v in np.clip(rng.uniform(170, 255) + rng.normal(0, 8, 3), 0, 255))
        elif kind < 0.8:
            colour = tuple(float(v) for v in np.clip(rng.uniform(0, 60) + rng.normal(0, 5, 3), 0, 255))
        else:
            colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        movers.append(Mover(
            cy=rng.uniform(CONTEXT, size - CONTEXT), cx=rng.uniform(CONTEXT, size - CONTEXT),
            vy=speed * math.sin(ang), vx=speed * math.cos(ang),
            half_len=rng.uniform(1.5, 6.0), half_wid=rng.uniform(1.0, 2.0), angle=ang,
            colour=(colour[0], colour[1], colour[2]), alpha=rng.uniform(0.75, 1.0),
        ))
    return movers


def draw_mover(frame: F32, m: Mover, cy: float, cx: float) -> None:
    """Composite ``m`` centred at ``(cy, cx)`` into ``frame`` in place (area coverage per pixel)."""
    size_y, size_x = frame.shape[:2]
    r = m.half_len + m.half_wid + 2
    y0, y1 = max(0, math.floor(cy - r)), min(size_y, math.ceil(cy + r) + 1)
    x0, x1 = max(0, math.floor(cx - r)), min(size_x, math.ceil(cx + r) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    ca, sa = math.cos(m.angle), math.sin(m.angle)
    u = xx * ca + yy * sa  # along the heading
    v = -xx * sa + yy * ca
    cov = np.clip(m.half_len + 0.5 - np.abs(u), 0, 1) * np.clip(m.half_wid + 0.5 - np.abs(v), 0, 1)
    a = (m.alpha * cov)[..., None]
    patch = frame[y0:y1, x0:x1]
    patch *= 1 - a
    patch += a * np.asarray(m.colour, dtype=np.float32)[: frame.shape[2]]


def _gaussian_blur(x: F32, sigma: float) -> F32:
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    p = np.pad(x, ((r, r), (r, r), (0, 0)), mode="symmetric")
    h, w = x.shape[:2]
    y = sum(k[i] * p[i : i + h] for i in range(2 * r + 1))
    return np.asarray(sum(k[i] * y[:, i : i + w] for i in range(2 * r + 1)), dtype=np.float32)


def synth_window(
    img: U8,
    rng: np.random.Generator,
    *,
    patch: int,
    frames: int,
    cfg: SynthConfig,
    top: int | None = None,
    left: int | None = None,
) -> tuple[U8, U8, npt.NDArray[np.float64]]:
    """One synthetic training window from an ``(H, W, C)`` uint8 image.

    Args:
        img: the (already GSD-downsampled, uint8) still image.
        rng: the random stream of this sample.
        patch: LR patch side ``p``.
        frames: window length ``T`` (odd).
        cfg: drift, movers, blur and noise settings.
        top, left: the region's top-left corner in ``img`` (random when omitted).

    Returns:
        ``lr (T, p, p, C)`` uint8, ``gt (4p, 4p, C)`` uint8, and the platform displacement
        ``(T, 2)`` (dy, dx) in LR px of each frame relative to the centre frame (scene content
        therefore moves by ``-(D_{t+1} - D_t)`` from frame t to t+1).
    """
    h, w = img.shape[:2]
    size = region_size(patch)
    if top is None:
        top = int(rng.integers(0, max(0, h - size) + 1))
    if left is None:
        left = int(rng.integers(0, max(0, w - size) + 1))
    drift = drift_path(rng, frames, cfg)
    movers = random_movers(rng, size, cfg)
    c = frames // 2
    stack = np.empty((size, size, frames * img.shape[2]), dtype=np.uint8)
    gt: U8 | None = None
    for t in range(frames):
        dy, dx = SCALE * drift[t]
        frame = shifted_region(img, top, left, size, float(dy), float(dx))
        for m in movers:
            # scene position at time t, seen from a platform displaced by (dy, dx)
            draw_mover(frame, m, m.cy + (t - c) * m.vy - dy, m.cx + (t - c) * m.vx - dx)
        q = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        if t == c:
            gt = q[CONTEXT : size - CONTEXT, CONTEXT : size - CONTEXT].copy()
        if cfg.blur > 0:
            q = np.clip(np.rint(_gaussian_blur(q.astype(np.float32), cfg.blur)), 0, 255).astype(np.uint8)
        stack[:, :, t * img.shape[2] : (t + 1) * img.shape[2]] = q
    ctx = CONTEXT // SCALE
    if cfg.noise > 0:
        small = imresize(stack.astype(np.float32), 1 / SCALE)[ctx : ctx + patch, ctx : ctx + patch]
        small = small + rng.normal(0.0, cfg.noise, small.shape).astype(np.float32)
        lr_hw = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    else:
        lr_hw = imresize(stack, 1 / SCALE)[ctx : ctx + patch, ctx : ctx + patch]
    lr = np.ascontiguousarray(lr_hw.reshape(patch, patch, frames, img.shape[2]).transpose(2, 0, 1, 3))
    assert gt is not None
    return lr, gt, drift


__all__ = [
    "CONTEXT",
    "Mover",
    "draw_mover",
    "drift_path",
    "max_patch_for",
    "random_movers",
    "region_size",
    "shifted_region",
    "synth_window",
]
