"""Tests for the real-world degradations (train/degrade.py) and the lossy round trips (io/lossy.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_train_data import _cfg, _texture, make_jilin

from satvsr_cli.errors import InputError
from satvsr_cli.io.lossy import code_frames, jpeg_frames, parse_codec
from satvsr_cli.train.config import apply_sets, validate
from satvsr_cli.train.data import TrainData
from satvsr_cli.train.degrade import (
    DegradationConfig,
    add_noise,
    check_config,
    code_clips,
    degrade_batch,
    gaussian_blur,
    plan_batch,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over a whole stack of uint8 frames."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _clip(n: int = 5, size: int = 32, seed: int = 0) -> np.ndarray:
    """A textured clip drifting one pixel per frame (uint8, (n, size, size, 3))."""
    tex = _texture(size + n, size + n, seed=seed, smooth=1.5)
    return np.stack([tex[t : t + size, t : t + size] for t in range(n)])


def test_code_frames_round_trip_is_lossy_deterministic_and_crf_ordered():
    clip = _clip(8, 48)
    a = code_frames(clip, "h264", 23)
    assert a.shape == clip.shape and a.dtype == np.uint8
    assert not np.array_equal(a, clip)
    assert np.array_equal(a, code_frames(clip, "h264", 23))  # one thread: deterministic
    q = [psnr(code_frames(clip, "h264", crf), clip) for crf in (10, 23, 40)]
    assert q[0] > q[1] > q[2]
    assert q[1] > 25.0


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_code_frames_odd_sizes_and_both_codecs(codec):
    clip = _clip(5, 33)[:, :, :31]
    out = code_frames(clip, codec, 20)
    assert out.shape == clip.shape
    assert psnr(out, clip) > 25.0


def test_code_frames_subsamples_chroma():
    # a 1-px red/blue column pattern: 4:2:0 cannot keep it, luma-only detail survives
    f = np.zeros((5, 32, 32, 3), np.uint8)
    f[..., ::2, 0] = 255
    f[..., 1::2, 2] = 255
    out = code_frames(f, "h264", 0)
    assert np.abs(out[..., 0].astype(int) - f[..., 0]).mean() > 40


def test_code_frames_errors():
    with pytest.raises(InputError, match="unknown codec"):
        code_frames(_clip(), "vp9", 23)
    with pytest.raises(InputError, match="RGB"):
        code_frames(np.zeros((2, 8, 8, 1), np.uint8))


def test_parse_codec():
    assert parse_codec("h264:23") == ("h264", 23)
    assert parse_codec("H265:30") == ("h265", 30)
    for bad in ("h264", "vp9:23", "h264:x", "h264:60"):
        with pytest.raises(InputError):
            parse_codec(bad)


def test_jpeg_frames_lossy_and_quality_ordered():
    clip = _clip(2, 64)
    lo, hi = jpeg_frames(clip, 30), jpeg_frames(clip, 95)
    assert psnr(hi, clip) > psnr(lo, clip) > 20.0


def test_code_clips_keeps_clips_separate_shape():
    clips = np.stack([_clip(5, 32, seed=s) for s in range(3)])
    out = code_clips(clips, "h264", 23)
    assert out.shape == clips.shape
    for i in range(3):  # each clip decodes near its own content, not a neighbour's
        assert psnr(out[i], clips[i]) > psnr(out[i], clips[(i + 1) % 3]) + 5


def test_blur_and_noise():
    f = _clip(2, 32).astype(np.float32)
    b = gaussian_blur(f, 0.8)
    assert b.shape == f.shape
    assert abs(b.mean() - f.mean()) < 1.0  # preserves the mean
    assert np.abs(np.diff(b, axis=2)).mean() < np.abs(np.diff(f, axis=2)).mean()  # smoother
    n = add_noise(np.full((4, 64, 64, 3), 128.0, np.float32), 2.0, np.random.default_rng(0))
    assert 2.0 < float(n.std()) < 3.5  # read noise 2 plus shot noise sqrt(0.5)·2


def test_degrade_batch_disabled_is_identity_and_enabled_deterministic():
    lr = np.stack([_clip(5, 32, seed=s) for s in range(4)])
    out, plans = degrade_batch(lr, [False] * 4, np.random.default_rng(0), DegradationConfig())
    assert out is lr and all(p.mode == "clean" for p in plans)
    cfg = DegradationConfig(enabled=True)
    a, pa = degrade_batch(lr, [True, False, True, False], np.random.default_rng(5), cfg)
    b, pb = degrade_batch(lr, [True, False, True, False], np.random.default_rng(5), cfg)
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, lr)


def test_degrade_batch_modes_follow_probabilities():
    lr = np.stack([_clip(5, 16, seed=s) for s in range(4)])
    clean = DegradationConfig(enabled=True, blur_prob=0, noise_prob=0, video_prob=0, jpeg_prob=0)
    out, plans = degrade_batch(lr, [True] * 4, np.random.default_rng(1), clean)
    assert np.array_equal(out, lr) and {p.mode for p in plans} == {"clean"}
    video = replace(clean, video_prob=1.0, codecs=("h265",), crf_h265=(30, 30))
    out, plans = degrade_batch(lr, [True] * 4, np.random.default_rng(1), video)
    assert {(p.mode, p.quality) for p in plans} == {("video", 30)}
    assert not np.array_equal(out, lr)
    jpeg = replace(clean, jpeg_prob=1.0)
    _, plans = degrade_batch(lr, [True, False, True, False], np.random.default_rng(1), jpeg)
    # JPEG only for samples synthesised from still images
    assert [p.mode for p in plans] == ["jpeg", "clean", "jpeg", "clean"]


def test_plan_batch_ranges():
    cfg = DegradationConfig(enabled=True, blur_prob=1, noise_prob=1, crf_h264=(18, 20),
                            crf_h265=(25, 26), blur_sigma=(0.5, 0.6), noise_sigma=(1, 2))
    rng = np.random.default_rng(3)
    for _ in range(20):
        plans, (codec, crf) = plan_batch(4, [False] * 4, rng, cfg)
        assert (codec, 18 <= crf <= 20) == ("h264", True) or (codec, 25 <= crf <= 26) == ("h265", True)
        assert all(0.5 <= p.blur <= 0.6 and 1 <= p.noise <= 2 for p in plans)


def test_check_config_errors():
    check_config(DegradationConfig())
    for bad in ({"video_prob": 1.5}, {"video_prob": 0.8, "jpeg_prob": 0.3}, {"codecs": ()},
                {"crf_h264": (30, 20)}, {"codecs": ("vp9",)}):
        with pytest.raises(InputError):
            check_config(DegradationConfig(**bad))  # type: ignore[arg-type]


def test_config_section_and_set(tmp_path):
    root = make_jilin(tmp_path / "jl", {"000": 6}, size=(64, 64), lr=True)
    cfg = apply_sets(_cfg([str(root)], patch=8), ["degradation.enabled=true",
                                                  "degradation.codecs=h265",
                                                  "degradation.video_prob=1.0", "degradation.jpeg_prob=0"])
    assert cfg.degradation.enabled and cfg.degradation.codecs == ("h265",)
    validate(cfg)
    with pytest.raises(InputError, match="probability"):
        validate(apply_sets(cfg, ["degradation.noise_prob=2"]))
    with pytest.raises(InputError):
        apply_sets(cfg, ["degradation.codecs=vp9"])


def test_train_data_degraded_batches_are_pure_and_gt_unchanged(tmp_path):
    root = make_jilin(tmp_path / "jl", {"000": 6}, size=(64, 64), lr=True)
    clean_cfg = _cfg([str(root)], patch=8)
    deg_cfg = apply_sets(clean_cfg, ["degradation.enabled=true", "degradation.video_prob=1.0", "degradation.jpeg_prob=0"])
    clean, deg = TrainData(clean_cfg), TrainData(deg_cfg)
    lr0, gt0 = clean.batch_arrays(3)
    lr1, gt1 = deg.batch_arrays(3)
    assert np.array_equal(gt0, gt1)  # the degradation stream does not disturb the clean one
    assert lr0.shape == lr1.shape and not np.array_equal(lr0, lr1)
    lr2, _ = TrainData(deg_cfg).batch_arrays(3)
    assert np.array_equal(lr1, lr2)  # a pure function of (seed, iteration, rank): resume is exact


@pytest.mark.skipif(not (SHARED / "satvideo" / "taipei").is_dir(), reason="../shared/data absent")
def test_real_clip_coded_like_a_users_mp4():
    import imageio.v3 as iio

    d = SHARED / "satvideo" / "taipei" / "eval" / "LR4x" / "000"
    frames = np.stack([iio.imread(p)[..., :3] for p in sorted(d.glob("*.png"))[:6]])
    coded = code_frames(frames, "h264", 23)
    q23 = psnr(coded, frames)
    q32 = psnr(code_frames(frames, "h264", 32), frames)
    assert 28.0 < q23 < 50.0 and q32 < q23
