"""The value range of a job: how each band's native values map to the network's [0, 1].

Rule, first match wins (one range per band, fixed for the whole job, so frames never flicker):

1. ``--value-range LO,HI`` (``origin="override"``): the same range for every band.
2. A range in the input's metadata (``origin="metadata"``): the ``SATVSR_VALUE_RANGE`` tag that
   satvsr writes on its GeoTIFF outputs (``"LO,HI"`` or one ``LO,HI`` per band separated by
   ``;``), which a user can also set with ``gdal_edit.py -mo``.
3. 8-bit data (``origin="dtype"``): 0–255, the papers' protocol.
4. Anything else, >8-bit integers and floats (``origin="estimated"``): each band's robust range
   (the :data:`PERCENTILES` of its valid pixels) over a deterministic sample of frames
   (:func:`sample_indices`: up to :data:`SAMPLE_FRAMES` evenly spaced frames, every
   :func:`pixel_stride`-th pixel). Nodata pixels are excluded. A uint16 stack holding 11-bit
   data, a float reflectance stack or the same scene in other units all reach the network
   with the same contrast, so the result does not depend on units: ``v → a·v + b`` moves the
   range the same way and gives the same output after mapping back.

GDAL's ``STATISTICS_MINIMUM/MAXIMUM`` tags and ``NBITS`` are not used: a minimum/maximum is set
by a single hot or dead pixel, and ``NBITS`` gives the container's range, not the data's, which
is the cause of near-black input this rule removes.

Inversion is exact: ``v = lo + x·(hi − lo)`` per band. Fixed ranges (1–3) clip the network's
input and output to ``[lo, hi]`` as before; an estimated range does not clip (the few pixels
beyond the percentiles keep their values); integer outputs are rounded and clipped to the dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from satvsr_cli.errors import InputError

Origin = Literal["override", "metadata", "dtype", "estimated"]

#: Percentiles of the valid pixels that map to 0 and 1 for estimated ranges.
PERCENTILES: tuple[float, float] = (0.05, 99.95)
#: Frames sampled (evenly spaced over the input) for an estimated range.
SAMPLE_FRAMES = 8
#: About this many pixels per sampled frame and band are used (a fixed stride, no randomness).
PIXELS_PER_FRAME = 1 << 18


@dataclass(frozen=True)
class ValueRange:
    """Per-band ``lo``/``hi`` in native units, where they came from, and the clipping rule."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    origin: Origin

    def __post_init__(self) -> None:
        if len(self.lo) != len(self.hi) or not self.lo:
            raise ValueError("lo and hi need one value per band")
        for a, b in zip(self.lo, self.hi, strict=True):
            if not (math.isfinite(a) and math.isfinite(b)) or a >= b:
                raise InputError(f"invalid value range {a:g},{b:g}: need finite LO < HI")

    @property
    def clip(self) -> bool:
        """Whether values are clipped to the range (every origin but ``estimated``)."""
        return self.origin != "estimated"

    @property
    def n_bands(self) -> int:
        """How many bands the range describes (1 means: the same for every band)."""
        return len(self.lo)

    def band(self, b: int) -> tuple[float, float]:
        """``(lo, hi)`` of 0-based band ``b`` (a single range applies to every band)."""
        i = 0 if self.n_bands == 1 else b
        return self.lo[i], self.hi[i]

    def arrays(self, bands: Sequence[int]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``lo`` and ``hi`` of the 0-based ``bands`` as arrays (for broadcasting over channels)."""
        pairs = [self.band(b) for b in bands]
        return (np.array([p[0] for p in pairs], dtype=np.float64),
                np.array([p[1] for p in pairs], dtype=np.float64))

    @property
    def uniform(self) -> bool:
        """One range for every band."""
        return len(set(zip(self.lo, self.hi, strict=True))) == 1

    def to_tag(self) -> str:
        """The ``SATVSR_VALUE_RANGE`` tag text: ``"LO,HI"`` or ``"LO,HI;LO,HI;…"`` (exact repr)."""
        pairs = [(self.lo[0], self.hi[0])] if self.uniform else list(zip(self.lo, self.hi, strict=True))
        return ";".join(f"{_num(a)},{_num(b)}" for a, b in pairs)

    def to_json(self) -> dict[str, object]:
        """For resume manifests and summaries."""
        return {"lo": list(self.lo), "hi": list(self.hi), "origin": self.origin}

    def describe(self) -> str:
        """One line for ``probe`` and the run summary."""
        if self.uniform:
            text = f"{_short(self.lo[0])}..{_short(self.hi[0])}"
        else:
            text = ", ".join(f"{_short(a)}..{_short(b)}" for a, b in zip(self.lo, self.hi, strict=True))
        how = {"override": "--value-range", "metadata": "metadata", "dtype": "8-bit",
               "estimated": f"estimated, p{PERCENTILES[0]:g}–p{PERCENTILES[1]:g} of the data"}
        return f"{text} ({how[self.origin]})"


def _num(v: float) -> str:
    """Text that reads back as the same float (``255`` for integers)."""
    return f"{float(v):.17g}"


def _short(v: float) -> str:
    return f"{v:.6g}"


def parse_tag(text: str, n_bands: int) -> ValueRange | None:
    """A ``SATVSR_VALUE_RANGE`` tag as a :class:`ValueRange`, or ``None`` when it does not parse."""
    pairs = []
    for part in text.split(";"):
        nums = part.replace(",", " ").split()
        if len(nums) != 2:
            return None
        try:
            pairs.append((float(nums[0]), float(nums[1])))
        except ValueError:
            return None
    if len(pairs) not in (1, n_bands):
        return None
    try:
        return ValueRange(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), "metadata")
    except InputError:
        return None


def needs_estimate(dtype: np.dtype | str) -> bool:
    """Whether data of ``dtype`` gets an estimated range (everything but 8-bit integers)."""
    return np.dtype(dtype).itemsize > 1 or np.dtype(dtype).kind == "f"


def sample_indices(n_frames: int | None, k: int = SAMPLE_FRAMES) -> list[int]:
    """Up to ``k`` evenly spaced frame indices, first and last included; the first ``k`` when the
    length is unknown."""
    if n_frames is None:
        return list(range(k))
    if n_frames <= k:
        return list(range(n_frames))
    return sorted({round(i * (n_frames - 1) / (k - 1)) for i in range(k)})


def pixel_stride(height: int, width: int, budget: int = PIXELS_PER_FRAME) -> int:
    """The row/column stride that keeps about ``budget`` pixels of a frame."""
    return max(1, math.ceil(math.sqrt(height * width / budget)))


def estimate(
    frames: Iterable[tuple[npt.NDArray[np.generic], npt.NDArray[np.bool_] | None]],
    *,
    percentiles: tuple[float, float] = PERCENTILES,
) -> ValueRange:
    """Per-band robust range of ``(data (H, W, C), valid (H, W) or None)`` frames.

    NaN and infinite values and pixels where ``valid`` is False are excluded. A band whose range
    is empty (a constant band) gets ``value ± 0.5``.

    Raises:
        InputError: no frames, or a band without a single valid pixel.
    """
    samples: list[list[npt.NDArray[np.float64]]] = []
    for data, valid in frames:
        arr = data if data.ndim == 3 else data[:, :, None]
        s = pixel_stride(arr.shape[0], arr.shape[1])
        sub = arr[::s, ::s].reshape(-1, arr.shape[2]).astype(np.float64)
        keep = np.ones(sub.shape[0], dtype=bool) if valid is None else valid[::s, ::s].reshape(-1)
        if not samples:
            samples = [[] for _ in range(arr.shape[2])]
        for c in range(arr.shape[2]):
            v = sub[keep, c]
            samples[c].append(v[np.isfinite(v)])
    if not samples:
        raise InputError("no frames to estimate the value range from")
    lo, hi = [], []
    for c, parts in enumerate(samples):
        v = np.concatenate(parts)
        if v.size == 0:
            raise InputError(f"band {c + 1} has no valid pixels in the sampled frames; "
                             "pass --value-range LO,HI")
        a, b = np.percentile(v, percentiles)
        a, b = float(a), float(b)
        if not b > a:
            a, b = a - 0.5, a + 0.5
        lo.append(a)
        hi.append(b)
    return ValueRange(tuple(lo), tuple(hi), "estimated")


__all__ = [
    "PERCENTILES",
    "SAMPLE_FRAMES",
    "ValueRange",
    "estimate",
    "needs_estimate",
    "parse_tag",
    "pixel_stride",
    "sample_indices",
]
