"""Value mapping (explicit ranges, exact inverse, rounding) and the band plan."""

from __future__ import annotations

import numpy as np
import pytest

from satvsr_cli.engine.convert import (
    default_value_range,
    from_unit,
    plan_bands,
    to_unit,
)
from satvsr_cli.errors import InputError


def test_band_plans():
    p1 = plan_bands(1)
    assert p1.groups == ((0, 0, 0),) and p1.bicubic == ()
    assert p1.sources(0) == [(0, 0), (0, 1), (0, 2)]  # output = mean of the 3 channels
    assert plan_bands(3).groups == ((0, 1, 2),)
    assert plan_bands(3, (3, 2, 1)).groups == ((2, 1, 0),)
    p2 = plan_bands(2)
    assert p2.groups == ((0, 1, 1),) and p2.sources(1) == [(0, 1), (0, 2)]
    p7 = plan_bands(7)
    assert p7.groups == ((0, 1, 2), (3, 4, 5), (6, 6, 6)) and p7.bicubic == ()
    p4 = plan_bands(4, (3, 2, 1))
    assert p4.groups == ((2, 1, 0),) and p4.bicubic == (3,)
    assert "bicubic on 4" in p4.describe()
    pg = plan_bands(6, (4,))
    assert pg.groups == ((3, 3, 3),) and pg.bicubic == (0, 1, 2, 4, 5)


@pytest.mark.parametrize("bands", [(5, 2, 1), (0, 1, 2), (1, 2)])
def test_band_plan_errors(bands):
    with pytest.raises(InputError, match="--bands"):
        plan_bands(4, bands)


def test_value_ranges_are_never_guessed():
    assert default_value_range("uint8") == (0.0, 255.0)
    assert default_value_range("uint16") == (0.0, 65535.0)
    assert default_value_range("int16") == (-32768.0, 32767.0)
    assert default_value_range("float32", (0.0, 1.0)) == (0.0, 1.0)
    with pytest.raises(InputError, match="--value-range"):
        default_value_range("float64")
    with pytest.raises(InputError):
        default_value_range("uint8", (5.0, 5.0))


@pytest.mark.parametrize(("dtype", "rng"), [("uint8", (0, 255)), ("uint16", (0, 65535)),
                                            ("uint16", (0, 4095)), ("int16", (-1000, 3000))])
def test_round_trip_is_exact(dtype, rng):
    lo, hi = rng
    x = np.random.default_rng(0).integers(lo, hi + 1, size=(17, 19, 3)).astype(dtype)
    y = to_unit(x, lo, hi)
    assert y.dtype == np.float32 and y.min() >= 0 and y.max() <= 1
    back = from_unit(y, lo, hi, dtype)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, x)


def test_rounding_and_clipping():
    y = np.array([2.5, 3.5, 2.49, 254.6, -3.0, 300.0], dtype=np.float32) / 255
    out = from_unit(y, 0, 255, "uint8")
    np.testing.assert_array_equal(out, [2, 4, 2, 255, 0, 255])  # half to even, not truncated
    f = from_unit(np.array([0.5, 1.5, -0.5], dtype=np.float32), 0.0, 10000.0, "float32")
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, [5000.0, 10000.0, 0.0])
    d = from_unit(np.array([0.25]), 100.0, 2147.0, "float64")
    assert d.dtype == np.float64 and abs(float(d[0]) - (100 + 0.25 * 2047)) < 1e-9
