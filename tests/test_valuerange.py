"""Per-band value ranges: estimation from data, tags, exact inversion, independence of units."""

from __future__ import annotations

import numpy as np
import pytest

from satvsr_cli.engine.convert import from_unit, to_unit
from satvsr_cli.engine.valuerange import (
    ValueRange,
    estimate,
    needs_estimate,
    parse_tag,
    pixel_stride,
    sample_indices,
)
from satvsr_cli.errors import InputError


def _frames(n=4, h=40, w=50, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [(rng.normal([1000, 2000, 50], [100, 300, 5], (h, w, 3)).astype(dtype), None)
            for _ in range(n)]


def test_estimate_is_per_band_and_robust():
    frames = _frames()
    frames[0][0][0, 0, 0] = 1e9  # one hot pixel does not move the range
    vr = estimate(frames)
    assert vr.origin == "estimated" and vr.n_bands == 3 and not vr.clip
    for c, (mu, sd) in enumerate([(1000, 100), (2000, 300), (50, 5)]):
        lo, hi = vr.band(c)
        assert mu - 4.5 * sd < lo < mu - 2.5 * sd and mu + 2.5 * sd < hi < mu + 4.5 * sd


def test_estimate_excludes_nodata_and_nan():
    data = np.full((20, 20, 1), 7.0)
    data[:10] = 100.0
    valid = np.ones((20, 20), bool)
    valid[10:] = False  # the 7s are nodata
    data[0, 0, 0] = np.nan
    vr = estimate([(data, valid)])
    assert vr.band(0) == (99.5, 100.5)  # constant valid band → value ± 0.5
    with pytest.raises(InputError, match="no valid pixels"):
        estimate([(data, np.zeros((20, 20), bool))])
    with pytest.raises(InputError, match="no frames"):
        estimate([])


@pytest.mark.parametrize(("a", "b"), [(8.0, 300.0), (12.0, 900.0), (1 / 255, 0.0), (-2.0, 5.0)])
def test_linear_change_of_units_moves_the_range_exactly(a, b):
    frames = _frames(dtype=np.float64)
    vr = estimate(frames)
    vr2 = estimate([(a * f + b, v) for f, v in frames])
    for c in range(3):
        lo, hi = vr.band(c)
        lo2, hi2 = vr2.band(c)
        exp = sorted((a * lo + b, a * hi + b))
        assert lo2 == pytest.approx(exp[0], rel=1e-9, abs=1e-9)
        assert hi2 == pytest.approx(exp[1], rel=1e-9, abs=1e-9)
    # hence the normalised data is the same (up to the sign of a)
    x = to_unit(frames[0][0], *vr.arrays([0, 1, 2]))
    x2 = to_unit(a * frames[0][0] + b, *vr2.arrays([0, 1, 2]))
    assert np.allclose(x, x2 if a > 0 else 1 - x2, atol=1e-5)


def test_tag_round_trip_and_parse_errors():
    vr = ValueRange((0.5, 10.25, -3.0), (1.5, 20.0, 4.125), "estimated")
    back = parse_tag(vr.to_tag(), 3)
    assert back is not None and back.lo == vr.lo and back.hi == vr.hi and back.origin == "metadata"
    one = ValueRange((0.0,), (2047.0,), "override")
    assert one.to_tag() == "0,2047" and one.band(5) == (0.0, 2047.0)
    assert parse_tag("0,2047", 4) is not None
    for bad in ("", "1", "a,b", "5,1", "0,1;0,2", "0,1;0,2;0,3;0,4"):
        assert parse_tag(bad, 3) is None
    with pytest.raises(InputError):
        ValueRange((1.0,), (1.0,), "override")


def test_inverse_is_exact():
    rng = np.random.default_rng(1)
    u16 = rng.integers(200, 3000, (8, 9, 3)).astype(np.uint16)
    vr = estimate([(u16, None)])
    lo, hi = vr.arrays([0, 1, 2])
    back = from_unit(to_unit(u16, lo, hi), lo, hi, "uint16", clip=False)
    assert np.array_equal(back, u16)  # beyond-percentile pixels keep their values too
    f = rng.normal(0.2, 0.05, (8, 9, 3))
    vr = estimate([(f, None)])
    lo, hi = vr.arrays([0, 1, 2])
    assert np.allclose(from_unit(to_unit(f, lo, hi), lo, hi, "float64", clip=False), f, atol=1e-6)
    # fixed ranges clip
    assert from_unit(np.array([[[1.5]]]), [0.0], [255.0], "uint8").item() == 255
    assert from_unit(np.array([[[1.5]]]), [0.0], [2.0], "float32", clip=False).item() == 3.0


def test_sampling_is_deterministic_and_bounded():
    assert sample_indices(3) == [0, 1, 2]
    assert sample_indices(100) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_indices(None) == list(range(8))
    assert pixel_stride(100, 100) == 1 and pixel_stride(2560, 2560) == 5
    assert not needs_estimate("uint8") and needs_estimate("uint16") and needs_estimate("float32")
