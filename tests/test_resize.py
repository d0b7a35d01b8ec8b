"""Tests for the MATLAB-exact bicubic resize (LR generator and ×4 baseline)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from satvsr_cli.resize import cubic, imresize, output_size

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SATVIDEO = SHARED_DATA / "satvideo"


# ---------------------------------------------------------------- an independent loop reference


def _keys(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_axis(x: np.ndarray, s: float, border: str) -> np.ndarray:
    """Resize axis 0 of a float64 array, one output sample at a time (networks.md §12, literally)."""
    n = x.shape[0]
    m = math.ceil(n * s - 1e-9)
    width = 4 / s if s < 1 else 4.0
    out = np.zeros((m, *x.shape[1:]))
    for j in range(1, m + 1):
        u = j / s + 0.5 * (1 - 1 / s)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        w = [s * _keys(s * (u - t)) if s < 1 else _keys(u - t) for t in taps]
        tot = sum(w)
        acc = np.zeros(x.shape[1:])
        for t, wk in zip(taps, w, strict=True):
            i = t - 1
            if border == "clamp":
                i = min(max(i, 0), n - 1)
            else:
                while i < 0 or i >= n:
                    i = -i - 1 if i < 0 else 2 * n - 1 - i
            acc = acc + (wk / tot) * x[i]
        out[j - 1] = acc
    return out


def _ref_imresize(img: np.ndarray, s: float, border: str = "clamp") -> np.ndarray:
    x = img.astype(np.float64)
    x = _ref_axis(x, s, border)
    x = np.swapaxes(_ref_axis(np.swapaxes(x, 0, 1), s, border), 0, 1)
    return x


# ---------------------------------------------------------------- unit tests


def test_cubic_kernel_values():
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5])
    np.testing.assert_allclose(
        cubic(x), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625], atol=1e-15
    )


@pytest.mark.parametrize("scale", [0.25, 4.0, 0.5, 3.0])
@pytest.mark.parametrize("border", ["clamp", "symmetric"])
def test_matches_loop_reference(scale, border):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(13, 22, 3))
    got = imresize(img, scale, border=border)
    ref = _ref_imresize(img, scale, border)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_uint8_rounds_the_float_result():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(40, 36, 3), dtype=np.uint8)
    for scale in (0.25, 4):
        out = imresize(img, scale)
        ref = np.clip(np.round(_ref_imresize(img, scale)), 0, 255).astype(np.uint8)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, ref)


def test_shapes_are_ceil_of_scaled_size():
    assert imresize(np.zeros((356, 716, 3), np.uint8), 0.25).shape == (89, 179, 3)
    assert imresize(np.zeros((10, 7), np.uint8), 0.25).shape == (3, 2)
    assert imresize(np.zeros((89, 179, 3), np.uint8), 4).shape == (356, 716, 3)
    assert output_size(256, 0.25) == 64 and output_size(7, 0.25) == 2 and output_size(160, 4) == 640


def test_constant_image_stays_constant():
    img = np.full((33, 17, 2), 77, np.uint8)
    for scale in (0.25, 4):
        np.testing.assert_array_equal(imresize(img, scale), np.full_like(imresize(img, scale), 77))


def test_x4_reproduces_a_linear_ramp_in_the_interior():
    # Keys' cubic reproduces linear functions: output j (1-based) samples input position u-1 (0-based)
    n = 20
    ramp = np.tile(np.arange(n, dtype=np.float64), (4, 1))
    up = imresize(ramp, 4)
    u = np.arange(1, 4 * n + 1) / 4 + 0.375 - 1
    interior = (u > 2) & (u < n - 3)
    np.testing.assert_allclose(up[0, interior], u[interior], atol=1e-12)


def test_clamp_and_symmetric_differ_only_near_the_border():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    a, b = imresize(img, 0.25), imresize(img, 0.25, border="symmetric")
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a[2:-2, 2:-2], b[2:-2, 2:-2])  # 18 taps reach ±8 px = 2 LR px
    lr = a
    a4, b4 = imresize(lr, 4), imresize(lr, 4, border="symmetric")
    assert not np.array_equal(a4, b4)
    np.testing.assert_array_equal(a4[4:-4, 4:-4], b4[4:-4, 4:-4])


def test_uint16_and_float32_keep_their_dtype_and_range():
    rng = np.random.default_rng(3)
    img16 = rng.integers(0, 65536, size=(24, 24, 3), dtype=np.uint16)
    out16 = imresize(img16, 0.25)
    assert out16.dtype == np.uint16
    ref = np.clip(np.round(_ref_imresize(img16, 0.25)), 0, 65535)
    np.testing.assert_array_equal(out16, ref.astype(np.uint16))
    up16 = imresize(img16, 4)  # overshoot is clipped, not wrapped
    assert up16.dtype == np.uint16 and up16.max() <= 65535
    f32 = img16.astype(np.float32) / 65535
    outf = imresize(f32, 4)
    assert outf.dtype == np.float32
    assert outf.min() < 0 or outf.max() > 1 or not np.allclose(outf, np.round(outf))  # unrounded


def test_x4_is_deterministic_and_right_shape():
    rng = np.random.default_rng(4)
    lr = rng.integers(0, 256, size=(16, 12, 3), dtype=np.uint8)
    a, b = imresize(lr, 4), imresize(lr.copy(), 4)
    assert a.shape == (64, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("img", "kwargs", "exc"),
    [
        (np.zeros((4,)), {"scale": 0.25}, ValueError),
        (np.zeros((4, 4, 3, 1)), {"scale": 0.25}, ValueError),
        (np.zeros((0, 4)), {"scale": 0.25}, ValueError),
        (np.zeros((8, 8)), {"scale": 0.0}, ValueError),
        (np.zeros((8, 8)), {"scale": -4}, ValueError),
        (np.zeros((8, 8)), {"scale": 4, "border": "reflect"}, ValueError),
        (np.zeros((8, 8), bool), {"scale": 4}, TypeError),
    ],
)
def test_bad_input_raises(img, kwargs, exc):
    with pytest.raises(exc):
        imresize(img, **kwargs)


# ---------------------------------------------------------------- golden LR on real frames


@pytest.mark.parametrize(
    "clip", ["jilin1/train/000", "jilin1/train/001", "jilin1/eval/000", "taipei/eval/000"]
)
def test_lr_is_bit_exact_on_real_frames(clip):
    split, name = clip.rsplit("/", 1)
    gt_dir = SATVIDEO / split / "GT" / name
    if not gt_dir.is_dir():
        pytest.skip(f"real data not available ({gt_dir} missing)")
    import imageio.v3 as iio

    frames = sorted(gt_dir.glob("*.png"))
    assert frames
    for f in frames:
        gt = iio.imread(f)
        lr = iio.imread(SATVIDEO / split / "LR4x" / name / f.name)
        out = imresize(gt, 0.25)
        assert out.dtype == lr.dtype and out.shape == lr.shape
        n_bad = int((out != lr).sum())
        assert n_bad == 0, f"{f}: {n_bad} of {lr.size} values differ from the golden LR"


def test_symmetric_border_is_not_bit_exact_on_real_frames():
    f = SATVIDEO / "jilin1" / "eval" / "GT" / "000" / "000.png"
    if not f.is_file():
        pytest.skip(f"real data not available ({f} missing)")
    import imageio.v3 as iio

    lr = iio.imread(SATVIDEO / "jilin1" / "eval" / "LR4x" / "000" / "000.png")
    assert not np.array_equal(imresize(iio.imread(f), 0.25, border="symmetric"), lr)
