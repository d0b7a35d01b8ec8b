"""Real-world degradations of training LR clips: blur, sensor noise, JPEG and real video coding.

The papers train on exact MATLAB-bicubic LR of lossless frames; users feed satvsr H.264/H.265
video and JPEG frames. :func:`degrade_batch` turns a batch of clean uint8 LR windows into what a
user's file would hold, with every random choice drawn from the batch's own seeded stream, so a
batch stays a pure function of (seed, iteration, rank) and ``--resume`` stays exact.

Per sample, in this order (each step consistent over the sample's 5 frames):

1. **Blur** (``blur_prob``): a Gaussian of σ in ``blur_sigma`` LR px on every frame — a softer
   optical transfer than the bicubic kernel alone.
2. **Sensor noise** (``noise_prob``): Gaussian read noise σ in ``noise_sigma`` grey levels plus
   signal-dependent (Poisson-like) noise of the same order, fresh for each frame, then rounding.
3. **Coding**, one mode per sample: ``clean`` (none), ``video`` (``video_prob``) or ``jpeg``
   (``jpeg_prob``, still-image sources only: frames stored as JPEG files, quality in
   ``jpeg_quality``). All ``video`` samples of a batch are coded in one ffmpeg call with one codec
   and CRF drawn for the batch (``codecs``; ``crf_h264`` / ``crf_h265``), the clips back to back
   with a key frame forced at each clip start, so every clip is a real GOP (an I frame, then
   P/B frames) coded as ``yuv420p`` with ``preset``: the chroma subsampling and inter-frame
   artefacts are the ones an mp4 carries. The bundled ffmpeg of imageio-ffmpeg does the work
   (libx264, libx265), one thread, so the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from satvsr_cli.errors import InputError
from satvsr_cli.io.lossy import ENCODERS, code_frames, jpeg_frames

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

Codec = Literal["h264", "h265"]


@dataclass(frozen=True)
class DegradationConfig:
    """The ``degradation`` section of a training config (off by default: the papers' clean LR)."""

    enabled: bool = False
    blur_prob: float = 0.25  # share of samples blurred
    blur_sigma: tuple[float, float] = (0.3, 0.9)  # Gaussian σ in LR px (uniform)
    noise_prob: float = 0.25  # share of samples with sensor noise
    noise_sigma: tuple[float, float] = (0.5, 3.0)  # read-noise σ in grey levels (uniform)
    video_prob: float = 0.6  # share of samples coded as a video
    codecs: tuple[Codec, ...] = ("h264", "h265")
    crf_h264: tuple[int, int] = (18, 32)  # CRF range (inclusive) for libx264
    crf_h265: tuple[int, int] = (20, 34)  # CRF range (inclusive) for libx265
    preset: str = "medium"
    fps: int = 10
    jpeg_prob: float = 0.15  # still-image sources only: share of samples stored as JPEG frames
    jpeg_quality: tuple[int, int] = (50, 95)


def check_config(cfg: DegradationConfig) -> None:
    """One-line errors for settings that cannot work (called when a run is configured)."""
    for name in ("blur_prob", "noise_prob", "video_prob", "jpeg_prob"):
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise InputError(f"degradation.{name}: {v} is not a probability in [0, 1]")
    if cfg.video_prob + cfg.jpeg_prob > 1.0:
        raise InputError("degradation.video_prob + degradation.jpeg_prob must not exceed 1")
    if cfg.video_prob > 0 and not cfg.codecs:
        raise InputError("degradation.codecs is empty but degradation.video_prob > 0")
    for c in cfg.codecs:
        if c not in ENCODERS:
            raise InputError(f"degradation.codecs: {c!r} is not one of h264, h265")
    for name in ("blur_sigma", "noise_sigma", "crf_h264", "crf_h265", "jpeg_quality"):
        lo, hi = getattr(cfg, name)
        if lo > hi or lo < 0:
            raise InputError(f"degradation.{name}: ({lo}, {hi}) is not a range")


# --------------------------------------------------------------------------- pixel operations


def gaussian_blur(frames: F32, sigma: float) -> F32:
    """Separable Gaussian blur of ``(T, H, W, C)`` frames over H and W, reflected borders."""
    r = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    p = np.pad(frames, ((0, 0), (r, r), (0, 0), (0, 0)), mode="reflect")
    h, w = frames.shape[1:3]
    y = sum(k[i] * p[:, i : i + h] for i in range(2 * r + 1))
    p = np.pad(np.asarray(y), ((0, 0), (0, 0), (r, r), (0, 0)), mode="reflect")
    return np.asarray(sum(k[i] * p[:, :, i : i + w] for i in range(2 * r + 1)), dtype=np.float32)


def add_noise(frames: F32, sigma: float, rng: np.random.Generator) -> F32:
    """Read noise N(0, σ²) plus shot noise of variance ``σ·v/255·σ`` (grows with the signal)."""
    shot = np.sqrt(np.clip(frames, 0.0, 255.0) / 255.0) * sigma
    noise = rng.standard_normal(frames.shape).astype(np.float32)
    noise2 = rng.standard_normal(frames.shape).astype(np.float32)
    return frames + sigma * noise + shot * noise2


def code_clips(clips: U8, codec: str, crf: int, *, preset: str = "medium", fps: int = 10) -> U8:
    """Code ``(N, T, H, W, 3)`` clips as one video, a key frame at each clip start, and decode.

    The clips are coded back to back (N·T frames) so that one ffmpeg process serves a batch;
    a key frame is forced every T frames (scene-cut detection off), so each clip is an
    independent GOP, ``yuv420p`` like a user's mp4.
    """
    n, t = clips.shape[:2]
    flat = clips.reshape(n * t, *clips.shape[2:])
    return code_frames(flat, codec, crf, preset=preset, fps=fps, keyint=t).reshape(clips.shape)


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class SampleDegradation:
    """What one sample got (for tests and logs)."""

    blur: float  # σ in LR px, 0 = none
    noise: float  # σ in grey levels, 0 = none
    mode: Literal["clean", "video", "jpeg"]
    quality: int  # CRF for video, JPEG quality for jpeg, 0 for clean


def plan_batch(
    n: int, still: list[bool], rng: np.random.Generator, cfg: DegradationConfig
) -> tuple[list[SampleDegradation], tuple[str, int]]:
    """Draw every sample's degradation and the batch's codec and CRF (always the same draws)."""
    codec = cfg.codecs[int(rng.integers(len(cfg.codecs)))] if cfg.codecs else "h264"
    lo, hi = cfg.crf_h264 if codec == "h264" else cfg.crf_h265
    crf = int(rng.integers(lo, hi + 1))
    plans = []
    for i in range(n):
        u = rng.random(4)
        blur = float(rng.uniform(*cfg.blur_sigma)) if u[0] < cfg.blur_prob else 0.0
        noise = float(rng.uniform(*cfg.noise_sigma)) if u[1] < cfg.noise_prob else 0.0
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        mode: Literal["clean", "video", "jpeg"] = "clean"
        if u[2] < cfg.video_prob:
            mode = "video"
        elif still[i] and u[2] < cfg.video_prob + cfg.jpeg_prob:
            mode = "jpeg"
        plans.append(SampleDegradation(blur, noise, mode,
                                       crf if mode == "video" else q if mode == "jpeg" else 0))
    return plans, (codec, crf)


def degrade_batch(
    lr: U8, still: list[bool], rng: np.random.Generator, cfg: DegradationConfig
) -> tuple[U8, list[SampleDegradation]]:
    """Degrade a batch of clean LR windows ``(B, T, h, w, 3)`` uint8; returns a new array.

    ``still[i]`` says whether sample ``i`` was synthesised from a still image (JPEG is then a
    possible mode). With ``cfg.enabled`` false the batch is returned unchanged.
    """
    b = lr.shape[0]
    if not cfg.enabled:
        return lr, [SampleDegradation(0.0, 0.0, "clean", 0)] * b
    plans, (codec, crf) = plan_batch(b, still, rng, cfg)
    out = lr.copy()
    for i, p in enumerate(plans):
        if p.blur == 0.0 and p.noise == 0.0:
            continue
        f = lr[i].astype(np.float32)
        if p.blur > 0:
            f = gaussian_blur(f, p.blur)
        if p.noise > 0:
            f = add_noise(f, p.noise, rng)
        out[i] = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    coded = [i for i, p in enumerate(plans) if p.mode == "video"]
    if coded:
        out[coded] = code_clips(out[coded], codec, crf, preset=cfg.preset, fps=cfg.fps)
    for i, p in enumerate(plans):
        if p.mode == "jpeg":
            out[i] = jpeg_frames(out[i], p.quality)
    return out, plans


__all__ = [
    "DegradationConfig",
    "SampleDegradation",
    "add_noise",
    "check_config",
    "code_clips",
    "degrade_batch",
    "gaussian_blur",
    "plan_batch",
]
