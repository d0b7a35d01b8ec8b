"""Pixel values and bands: native dtype ↔ float [0, 1] with an explicit range, and the band plan.

Values are never normalised with a range guessed from pixel values: ``uint8`` uses 0–255,
``uint16`` 0–65535, unless the caller passes a range (``--value-range LO,HI`` or GeoTIFF metadata);
float data needs one of those. The inverse is exact: network outputs are clipped to [0, 1], mapped
back to ``[lo, hi]``, and integers are rounded half-to-even (not truncated) into the input dtype.

Bands (the networks take RGB):

- 1 band: replicated to three channels; the output band is the mean of the three output channels.
- 3 bands: used as they are (``--bands`` may reorder them, e.g. ``3,2,1`` for BGR data).
- ``--bands a,b,c`` (1-based) with more bands: the network sees bands a, b, c; every other band
  is upscaled with MATLAB-style bicubic (:func:`satvsr_cli.resize.imresize`) and tagged as such.
- 2 or more than 3 bands without ``--bands``: every consecutive triplet (1-3, 4-6, …) goes through
  the network in turn; a last incomplete triplet is padded by repeating its last band, and an
  output band fed by several channels is their mean. All bands are kept, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from satvsr_cli.errors import InputError


@dataclass(frozen=True)
class BandPlan:
    """How the bands of a frame map onto network passes.

    ``groups[g]`` holds the three 0-based source bands fed to pass ``g``; ``bicubic`` the 0-based
    bands upscaled by bicubic interpolation instead.
    """

    n_bands: int
    groups: tuple[tuple[int, int, int], ...]
    bicubic: tuple[int, ...]

    def sources(self, band: int) -> list[tuple[int, int]]:
        """The ``(group, channel)`` pairs whose output feeds output band ``band``."""
        return [(g, c) for g, grp in enumerate(self.groups) for c, b in enumerate(grp) if b == band]

    def describe(self) -> str:
        """A short human description, e.g. ``"bands 1,2,3 → network; 4 bicubic"``."""
        parts = [
            "(" + ",".join(str(b + 1) for b in grp) + ")" for grp in self.groups
        ]
        text = f"{self.n_bands} band{'s' if self.n_bands != 1 else ''}: network on " + " ".join(parts)
        if self.bicubic:
            text += "; bicubic on " + ",".join(str(b + 1) for b in self.bicubic)
        return text


def plan_bands(n_bands: int, bands: tuple[int, ...] | None = None) -> BandPlan:
    """The :class:`BandPlan` for ``n_bands`` bands, with optional 1-based ``bands`` (1 or 3 values).

    Raises:
        InputError: ``bands`` has the wrong length or names a band that does not exist.
    """
    if n_bands < 1:
        raise InputError("the input has no bands")
    if bands is not None:
        if len(bands) not in (1, 3):
            raise InputError(f"--bands takes 1 or 3 band numbers, got {len(bands)}")
        bad = [b for b in bands if not 1 <= b <= n_bands]
        if bad:
            raise InputError(
                f"--bands {','.join(map(str, bands))}: band {bad[0]} does not exist "
                f"(the input has {n_bands} band{'s' if n_bands != 1 else ''})"
            )
        sel = tuple(b - 1 for b in bands)
        grp = (sel[0], sel[0], sel[0]) if len(sel) == 1 else (sel[0], sel[1], sel[2])
        return BandPlan(n_bands, (grp,), tuple(b for b in range(n_bands) if b not in sel))
    if n_bands == 1:
        return BandPlan(1, ((0, 0, 0),), ())
    if n_bands == 3:
        return BandPlan(3, ((0, 1, 2),), ())
    groups = []
    for i in range(0, n_bands, 3):
        chunk = list(range(i, min(i + 3, n_bands)))
        chunk += [chunk[-1]] * (3 - len(chunk))
        groups.append((chunk[0], chunk[1], chunk[2]))
    return BandPlan(n_bands, tuple(groups), ())


def default_value_range(
    dtype: np.dtype | str, override: tuple[float, float] | None = None
) -> tuple[float, float]:
    """``override`` if given, else the full range of an unsigned 8/16-bit dtype.

    Raises:
        InputError: for other dtypes without an override (the range is never guessed).
    """
    if override is not None:
        return check_value_range(override)
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return (0.0, 255.0)
    if dt == np.uint16:
        return (0.0, 65535.0)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return (float(info.min), float(info.max))
    raise InputError(
        f"{dt} pixels need an explicit value range: pass --value-range LO,HI "
        "(e.g. 0,1 for reflectance or 0,10000 for scaled reflectance)"
    )


def check_value_range(rng: tuple[float, float]) -> tuple[float, float]:
    """Validate ``(lo, hi)``: finite and ``lo < hi``."""
    lo, hi = float(rng[0]), float(rng[1])
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise InputError(f"invalid value range {lo:g},{hi:g}: need finite LO < HI")
    return lo, hi


def to_unit(
    x: npt.NDArray[np.generic], lo: npt.ArrayLike, hi: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """Native values → float32 ``(x - lo) / (hi - lo)`` (not clipped); ``lo``/``hi`` are scalars
    or one value per channel (last axis)."""
    out = x.astype(np.float32)
    lo_a = np.asarray(lo, dtype=np.float64)
    if np.any(lo_a != 0.0):
        out -= lo_a.astype(np.float32)
    out *= (1.0 / (np.asarray(hi, dtype=np.float64) - lo_a)).astype(np.float32)
    return out


def bicubic_band(
    x: npt.NDArray[np.generic],
    scale: int,
    lo: float,
    hi: float,
    dtype: np.dtype | str,
    *,
    clip: bool = True,
) -> npt.NDArray[np.generic]:
    """A band that does not go through the network: MATLAB bicubic ×``scale`` of ``x`` (H, W),
    under the same value rule as the network's bands: clipped to ``[lo, hi]`` when their
    output is (``clip``: fixed ranges), so that bicubic overshoot cannot leave the range on one
    band only; integers rounded half to even and clipped to ``dtype``; floats stay float."""
    from satvsr_cli.resize import imresize

    dt = np.dtype(dtype)
    v = imresize(np.ascontiguousarray(x, dtype=np.float64), scale)
    if clip:
        np.clip(v, lo, hi, out=v)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        np.rint(v, out=v)
        np.clip(v, info.min, info.max, out=v)
    return v.astype(dt)


def from_unit(
    y: npt.NDArray[np.floating], lo: npt.ArrayLike, hi: npt.ArrayLike, dtype: np.dtype | str,
    *, clip: bool = True,
) -> npt.NDArray[np.generic]:
    """Float ``[0, 1]`` values → native ``dtype``: scaled to ``[lo, hi]`` (clipped to [0, 1]
    first when ``clip``); integers rounded half to even and clipped to the dtype's range; floats
    stay float. ``lo``/``hi`` are scalars or one value per channel (last axis)."""
    dt = np.dtype(dtype)
    work = np.float64 if dt.itemsize > 4 else np.float32
    v = (np.clip(y, 0.0, 1.0) if clip else y).astype(work)
    lo_a = np.asarray(lo, dtype=np.float64)
    v *= (np.asarray(hi, dtype=np.float64) - lo_a).astype(work)
    if np.any(lo_a != 0.0):
        v += lo_a.astype(work)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        np.rint(v, out=v)
        np.clip(v, info.min, info.max, out=v)
    return v.astype(dt)
