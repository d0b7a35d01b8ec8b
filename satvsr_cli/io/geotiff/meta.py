"""GeoTIFF metadata: :class:`GeoMeta`, the value range, and the georeferencing of the x4 grid
(see ``docs/geotiff.md``)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine, TransformNotInvertibleError
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.rpc import RPC

from satvsr_cli.options import Compression

AI_NOTE = "AI-generated super-resolution; not a measurement"


COMPRESSIONS: tuple[str, ...] = tuple(Compression)


GEOTIFF_SUFFIXES = (".tif", ".tiff")


#: Dataset tag holding the normalisation range as ``"LO,HI"`` (one pair, or one per band joined by
#: ``;``; read by :func:`satvsr_cli.engine.plan.value_range_for`).
VALUE_RANGE_TAG = "SATVSR_VALUE_RANGE"


# RPC fields in GDAL's metadata names; the coefficient fields hold 20 floats each.
_RPC_COEFF_KEYS = ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")


_RPC_KEYS = (
    "HEIGHT_OFF",
    "HEIGHT_SCALE",
    "LAT_OFF",
    "LAT_SCALE",
    "LONG_OFF",
    "LONG_SCALE",
    "LINE_OFF",
    "LINE_SCALE",
    "SAMP_OFF",
    "SAMP_SCALE",
    "ERR_BIAS",
    "ERR_RAND",
    *_RPC_COEFF_KEYS,
)


@dataclass(frozen=True)
class GeoMeta:
    """Grid, georeferencing and per-band metadata shared by every frame of a stack.

    ``count`` is the number of bands per frame; the per-band tuples have ``count`` entries and
    describe the bands of one frame. ``colorinterp`` holds :class:`rasterio.enums.ColorInterp`
    names (``"gray"``, ``"red"``, ...). ``rpcs`` uses GDAL's RPC names (``LINE_OFF``,
    ``SAMP_SCALE``, ...; the four ``*_COEFF`` entries are tuples of 20 floats). ``tags`` is the
    first file's default-namespace dataset metadata without ``AREA_OR_POINT`` (kept in
    ``area_or_point``). ``value_range`` comes from metadata only (the ``SATVSR_VALUE_RANGE`` tag or ``NBITS``).
    ``transform`` is the identity when the file has no geotransform (then ``crs_wkt`` is None
    or the file is georeferenced by GCPs or RPCs).
    """

    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: Affine
    gcps: tuple[GroundControlPoint, ...] | None = None
    gcps_crs_wkt: str | None = None
    rpcs: dict[str, Any] | None = None
    nodata: float | None = None
    band_descriptions: tuple[str | None, ...] = ()
    colorinterp: tuple[str, ...] = ()
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    units: tuple[str | None, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    area_or_point: str | None = None
    value_range: tuple[float, float] | None = None
    source_paths: tuple[Path, ...] = ()

    @property
    def has_geotransform(self) -> bool:
        """True when ``transform`` is a real geotransform (not the no-georeferencing identity)."""
        if self.gcps:
            return False
        return self.transform != Affine.identity() or self.crs_wkt is not None


def compose(a: Affine, b: Affine) -> Affine:
    """``a @ b`` (``a * b`` in the rasterio docs; affine >= 3 deprecates ``*`` for this)."""
    return a @ b if hasattr(Affine, "__matmul__") else a * b


def _parse_range(text: str) -> tuple[float, float] | None:
    """``"LO,HI"`` (or ``"LO HI"``) as floats, or None when it does not parse or LO >= HI."""
    parts = text.replace(",", " ").split()
    if len(parts) != 2:
        return None
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        return None
    return lo, hi


def _metadata_range(src: rasterio.DatasetReader) -> tuple[float, float] | None:
    """Normalisation range from metadata: the ``SATVSR_VALUE_RANGE`` tag, else ``NBITS``."""
    found = src.tags().get(VALUE_RANGE_TAG)
    if found is not None:
        parsed = _parse_range(found)
        if parsed is not None:
            return parsed
    nbits = src.tags(1, ns="IMAGE_STRUCTURE").get("NBITS")
    dtype = np.dtype(src.dtypes[0])
    if nbits and nbits.isdigit() and dtype.kind == "u":
        bits = int(nbits)
        if 0 < bits < dtype.itemsize * 8:
            return 0.0, float(2**bits - 1)
    return None


def _rpcs_to_dict(rpc: RPC | None) -> dict[str, Any] | None:
    if rpc is None:
        return None
    out: dict[str, Any] = {}
    for key in _RPC_KEYS:
        value = getattr(rpc, key.lower(), None)
        if value is None:
            continue
        out[key] = tuple(float(v) for v in value) if key in _RPC_COEFF_KEYS else float(value)
    return out


def dict_to_rpcs(rpcs: dict[str, Any]) -> RPC:
    kwargs = {k.lower(): (list(v) if k in _RPC_COEFF_KEYS else v) for k, v in rpcs.items()}
    return RPC(**kwargs)


def _crs_wkt(crs: CRS | None) -> str | None:
    return crs.to_wkt() if crs else None


def meta_from(
    src: rasterio.DatasetReader, bands: Sequence[int], paths: tuple[Path, ...]
) -> GeoMeta:
    """GeoMeta of the band group ``bands`` (1-based) of ``src``."""
    gcps, gcps_crs = src.gcps
    tags = {k: v for k, v in src.tags().items() if k != "AREA_OR_POINT"}
    idx = [b - 1 for b in bands]
    return GeoMeta(
        width=src.width,
        height=src.height,
        count=len(bands),
        dtype=str(src.dtypes[0]),
        crs_wkt=_crs_wkt(src.crs),
        transform=src.transform,
        gcps=tuple(gcps) if gcps else None,
        gcps_crs_wkt=_crs_wkt(gcps_crs) if gcps else None,
        rpcs=_rpcs_to_dict(src.rpcs),
        nodata=None if src.nodata is None else float(src.nodata),
        band_descriptions=tuple(src.descriptions[i] for i in idx),
        colorinterp=tuple(src.colorinterp[i].name for i in idx),
        scales=tuple(float(src.scales[i]) for i in idx),
        offsets=tuple(float(src.offsets[i]) for i in idx),
        units=tuple((src.units[i] or None) for i in idx),
        tags=tags,
        area_or_point=src.tags().get("AREA_OR_POINT"),
        value_range=_metadata_range(src),
        source_paths=paths,
    )


def same_grid(a: Affine, b: Affine, width: int, height: int) -> bool:
    """True when two transforms map this grid's pixels to the same place within 1e-6 px."""
    if a == b:
        return True
    try:
        rel = compose(~a, b)
    except TransformNotInvertibleError:
        return False
    tol = 1e-6 / max(width, height, 1)
    return (
        abs(rel.a - 1) <= tol
        and abs(rel.e - 1) <= tol
        and abs(rel.b) <= tol
        and abs(rel.d) <= tol
        and abs(rel.c) <= 1e-6
        and abs(rel.f) <= 1e-6
    )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence rasterio's NotGeoreferencedWarning: GCP/RPC-only files are expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def scaled_georef(
    meta: GeoMeta, scale: int = 4
) -> tuple[Affine, tuple[GroundControlPoint, ...] | None, dict[str, Any] | None]:
    """(transform, gcps, rpcs) of the x``scale`` output grid.

    ``transform * Affine.scale(1/s)`` scales all four linear terms (rotation and shear stay
    right) and keeps the corner origin. GCP pixel/line positions are corner-based and are
    multiplied by ``s``. RPC ``SAMP_OFF``/``LINE_OFF`` refer to pixel centres:
    ``(OFF + 0.5)*s - 0.5``; ``SAMP_SCALE``/``LINE_SCALE`` are multiplied by ``s``.
    """
    s = int(scale)
    if s < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    transform = compose(meta.transform, Affine.scale(1 / s))
    gcps = None
    if meta.gcps:
        gcps = tuple(
            GroundControlPoint(
                row=g.row * s, col=g.col * s, x=g.x, y=g.y, z=g.z, id=g.id, info=g.info
            )
            for g in meta.gcps
        )
    rpcs = None
    if meta.rpcs:
        rpcs = dict(meta.rpcs)
        for axis in ("SAMP", "LINE"):
            if f"{axis}_OFF" in rpcs:
                rpcs[f"{axis}_OFF"] = (float(rpcs[f"{axis}_OFF"]) + 0.5) * s - 0.5
            if f"{axis}_SCALE" in rpcs:
                rpcs[f"{axis}_SCALE"] = float(rpcs[f"{axis}_SCALE"]) * s
    return transform, gcps, rpcs


def window_meta(meta: GeoMeta, x: int, y: int, width: int, height: int) -> GeoMeta:
    """The metadata of the ``width x height`` window at column ``x``, row ``y`` (GDAL's
    ``-srcwin``): the transform's origin moves to the window's corner (rotation and shear
    kept), GCP pixel/line positions and RPC ``SAMP_OFF``/``LINE_OFF`` move by ``-x``/``-y``."""
    import dataclasses

    gcps = None
    if meta.gcps:
        gcps = tuple(
            GroundControlPoint(row=g.row - y, col=g.col - x, x=g.x, y=g.y, z=g.z, id=g.id,
                               info=g.info)
            for g in meta.gcps
        )
    rpcs = None
    if meta.rpcs:
        rpcs = dict(meta.rpcs)
        for axis, off in (("SAMP", x), ("LINE", y)):
            if f"{axis}_OFF" in rpcs:
                rpcs[f"{axis}_OFF"] = float(rpcs[f"{axis}_OFF"]) - off
    transform = (compose(meta.transform, Affine.translation(x, y))
                 if meta.has_geotransform else meta.transform)
    return dataclasses.replace(meta, width=width, height=height, transform=transform,
                               gcps=gcps if meta.gcps else meta.gcps, rpcs=rpcs or meta.rpcs)


def upsample_mask(valid: np.ndarray, scale: int = 4) -> np.ndarray:
    """Nearest-neighbour x``scale`` upsampling of an ``(H, W)`` bool mask."""
    return np.repeat(np.repeat(np.asarray(valid, dtype=bool), scale, axis=0), scale, axis=1)
