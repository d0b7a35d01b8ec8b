"""GeoTIFF frame stacks: read one frame at a time, write x4 outputs with scaled georeferencing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
from affine import Affine

__all__ = [
    "GeoMeta",
    "GeoTiffFramesWriter",
    "GeoTiffStack",
    "GeoTiffStackWriter",
    "is_geotiff",
    "open_geotiff_stack",
    "scaled_georef",
    "upsample_mask",
    "value_range",
]

AI_NOTE = "AI-generated super-resolution; not a measurement"
COMPRESSIONS = ("none", "deflate", "zstd", "lzw")


@dataclass(frozen=True)
class GeoMeta:
    """Grid, georeferencing and per-band metadata shared by every frame of a stack.

    ``count`` is the number of bands per frame. ``value_range`` comes from metadata only.
    """

    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: Affine
    gcps: tuple | None = None  # tuple[rasterio.control.GroundControlPoint, ...]
    gcps_crs_wkt: str | None = None
    rpcs: dict[str, float] | None = None
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


class GeoTiffStack:
    """A readable frame stack: one multi-band file split by ``bands_per_frame``, or many
    single-frame files on one grid. ``frame_names`` holds the file stem per frame (many files)
    or ``f"{stem}_t{i:04d}"`` (a split multi-band file)."""

    meta: GeoMeta
    n_frames: int
    frame_names: tuple[str, ...]

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i`` as ``(H, W, C)`` in the native dtype with nodata/NaN filled from the
        nearest valid pixel, plus the ``(H, W)`` bool mask (True = valid in all bands)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the open datasets."""
        raise NotImplementedError

    def __enter__(self) -> GeoTiffStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_geotiff_stack(spec: str | Path, *, bands_per_frame: int | None = None) -> GeoTiffStack:
    """Open a folder, a glob or one file as a frame stack (natural name order).

    Raises InputError (one line naming the file and the problem) on files with different
    size/CRS/transform/band count/dtype, an unreadable or truncated file, zero frames, or a band
    count not divisible by ``bands_per_frame``.
    """
    raise NotImplementedError


def is_geotiff(path: Path) -> bool:
    """True for a ``.tif``/``.tiff`` file that carries georeferencing (CRS, GCPs or RPCs)."""
    raise NotImplementedError


def value_range(meta: GeoMeta, override: tuple[float, float] | None = None) -> tuple[float, float]:
    """The (lo, hi) normalisation range: override > metadata > integer dtype full range.

    Never derived from pixel values. A float raster with neither raises InputError asking for
    ``--value-range LO,HI``.
    """
    raise NotImplementedError


def scaled_georef(meta: GeoMeta, scale: int = 4) -> tuple[Affine, tuple | None, dict | None]:
    """(transform, gcps, rpcs) of the x``scale`` output grid: ``transform * Affine.scale(1/s)``,
    GCP col/row times ``s``, RPC offsets ``(OFF + 0.5)*s - 0.5`` and scales times ``s``."""
    raise NotImplementedError


def upsample_mask(valid: np.ndarray, scale: int = 4) -> np.ndarray:
    """Nearest-neighbour x``scale`` upsampling of an ``(H, W)`` bool mask."""
    raise NotImplementedError


class GeoTiffFramesWriter:
    """Writes one GeoTIFF per frame into ``out_dir`` (``<name>.tif``), atomically.

    ``data`` passed to :meth:`write` must already be in the native dtype (the caller clips and
    rounds); nodata is restored where ``~valid``.
    """

    def __init__(
        self,
        out_dir: Path,
        meta: GeoMeta,
        *,
        scale: int = 4,
        compress: str = "deflate",
        cog: bool = False,
        tags: dict[str, str] | None = None,
        band_descriptions: tuple[str | None, ...] | None = None,
        overviews: bool = False,
    ) -> None:
        raise NotImplementedError

    def path_for(self, name: str) -> Path:
        """The output path for frame ``name``."""
        raise NotImplementedError

    def is_complete(self, name: str) -> bool:
        """True if the output exists, opens, and has the right size, dtype, band count, CRS and
        transform (used by resume)."""
        raise NotImplementedError

    def write(self, name: str, data: np.ndarray, valid: np.ndarray | None = None) -> Path:
        """Write ``(sH, sW, C)`` ``data`` (native dtype) to a temp name in the same folder and
        ``os.replace`` it into place; nodata where ``~valid``."""
        raise NotImplementedError


class GeoTiffStackWriter:
    """Writes one stacked GeoTIFF of all frames (frame-major band order) to a temp name;
    :meth:`commit` renames it into place, :meth:`abort` removes it."""

    def __init__(
        self,
        out_path: Path,
        meta: GeoMeta,
        n_frames: int,
        *,
        scale: int = 4,
        compress: str = "deflate",
        cog: bool = False,
        tags: dict[str, str] | None = None,
        band_descriptions: tuple[str | None, ...] | None = None,
        frame_names: tuple[str, ...] | None = None,
        overviews: bool = False,
    ) -> None:
        raise NotImplementedError

    def write(self, i: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write frame ``i`` (``(sH, sW, C)``, native dtype) into its band group."""
        raise NotImplementedError

    def commit(self) -> Path:
        """Finish the file (COG conversion if asked) and rename it to ``out_path``."""
        raise NotImplementedError

    def abort(self) -> None:
        """Remove the temp file; ``out_path`` is left untouched."""
        raise NotImplementedError
