"""GeoTIFF frame stacks: read one frame at a time, write x4 outputs with scaled georeferencing.

Reading (:func:`open_geotiff_stack`) accepts one file, a folder or a glob. Frames are either the
band groups of one multi-band file (``bands_per_frame``) or one file per frame (natural name
order); all files must share one grid. :meth:`GeoTiffStack.read` reads only the bands of the
asked frame, so a 4096 x 4096 stack costs one frame of memory.

Writing (:class:`GeoTiffFramesWriter`, :class:`GeoTiffStackWriter`) follows the geospatial
checklist of ``docs/ecosystem.md`` section 4: CRS copied as is, ``transform * Affine.scale(1/s)``
(rotated and sheared transforms stay right), GCPs and RPCs rescaled, ``AREA_OR_POINT``, dtype,
nodata, band descriptions, colour interpretation, scales, offsets and units kept; tiled,
compressed with the right predictor, ``BIGTIFF=IF_SAFER``, optional COG; provenance tags. Every
output is written under a temporary name in the destination folder and renamed into place, so
an interrupted run never leaves a half-written file under the final name.

The writers take data that is already in the native dtype: clipping and rounding are the
caller's job (the engine does it). Nothing here clips, rounds or casts values; the one change
is that a valid pixel whose value equals the nodata value is moved one step off it (else it
would read back as nodata). Floats without a nodata value get NaN on invalid pixels; integers
without one get an internal mask band.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob as _glob
import json
import math
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine, TransformNotInvertibleError
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.rpc import RPC
from rasterio.windows import Window

from satvsr_cli import __version__
from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.jilin import natural_key

__all__ = [
    "AI_NOTE",
    "COMPRESSIONS",
    "GEOTIFF_SUFFIXES",
    "VALUE_RANGE_TAG",
    "GeoMeta",
    "GeoTiffFramesWriter",
    "GeoTiffStack",
    "GeoTiffStackWriter",
    "fill_invalid",
    "is_geotiff",
    "open_geotiff_stack",
    "scaled_georef",
    "upsample_mask",
    "value_range",
]

AI_NOTE = "AI-generated super-resolution; not a measurement"
COMPRESSIONS = ("none", "deflate", "zstd", "lzw")
GEOTIFF_SUFFIXES = (".tif", ".tiff")
#: Dataset tag holding the normalisation range as ``"LO,HI"`` (read by :func:`value_range`).
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
# Tags that the writers set themselves and never copy from the source.
_OWN_TAGS = ("TIFFTAG_SOFTWARE", "TIFFTAG_DATETIME", "AREA_OR_POINT")
_BIG = np.int32(2**30)


@dataclass(frozen=True)
class GeoMeta:
    """Grid, georeferencing and per-band metadata shared by every frame of a stack.

    ``count`` is the number of bands per frame; the per-band tuples have ``count`` entries and
    describe the bands of one frame. ``colorinterp`` holds :class:`rasterio.enums.ColorInterp`
    names (``"gray"``, ``"red"``, ...). ``rpcs`` uses GDAL's RPC names (``LINE_OFF``,
    ``SAMP_SCALE``, ...; the four ``*_COEFF`` entries are tuples of 20 floats). ``tags`` is the
    first file's default-namespace dataset metadata without ``AREA_OR_POINT`` (kept in
    ``area_or_point``). ``value_range`` comes from metadata only (see :func:`value_range`).
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


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _compose(a: Affine, b: Affine) -> Affine:
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


def _dict_to_rpcs(rpcs: dict[str, Any]) -> RPC:
    kwargs = {k.lower(): (list(v) if k in _RPC_COEFF_KEYS else v) for k, v in rpcs.items()}
    return RPC(**kwargs)


def _crs_wkt(crs: CRS | None) -> str | None:
    return crs.to_wkt() if crs else None


def _meta_from(
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


def _same_grid(a: Affine, b: Affine, width: int, height: int) -> bool:
    """True when two transforms map this grid's pixels to the same place within 1e-6 px."""
    if a == b:
        return True
    try:
        rel = _compose(~a, b)
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


def _block_windows_check(src: rasterio.DatasetReader, path: Path, limit: int = 1024) -> None:
    """Raise InputError when a tile/strip of the first or last band lies past the end of file.

    Looks at every block when a band has at most ``limit`` of them, else at the first block and
    the last ``limit`` in file order (writers store blocks in order, so truncation shows there).
    Formats whose block offsets GDAL does not expose are not checked.
    """
    size = path.stat().st_size
    bh, bw = src.block_shapes[0]
    nx, ny = math.ceil(src.width / bw), math.ceil(src.height / bh)
    n = nx * ny
    picks = range(n) if n <= limit else [0, *range(n - limit, n)]
    for b in sorted({1, src.count}):
        for k in picks:
            y, x = divmod(k, nx)
            off = src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b)
            cnt = src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=b)
            if off is None or cnt is None:
                # Not a TIFF, or a pixel-interleaved band other than the first.
                break
            if int(off) + int(cnt) > size:
                raise InputError(f"{path}: file is truncated (data block past end of file)")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence rasterio's NotGeoreferencedWarning: GCP/RPC-only files are expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _open(path: Path) -> rasterio.DatasetReader:
    try:
        with _quiet():
            return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as a raster ({msg})") from None


def _nearest_along_rows(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the column of the nearest True in its row and the distance to it
    (``_BIG`` where the row has no True); int32 arrays."""
    w = valid.shape[1]
    ar = np.arange(w, dtype=np.int32)
    left = np.where(valid, ar, np.int32(-1))
    np.maximum.accumulate(left, axis=1, out=left)
    right = np.where(valid, ar, _BIG)
    right = np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1]
    dl = np.where(left >= 0, ar - left, _BIG)
    dr = np.where(right < _BIG, right - ar, _BIG)
    use_left = dl <= dr
    return np.where(use_left, left, right), np.where(use_left, dl, dr)


def _nearest_in_rows_chunked(valid: np.ndarray, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nearest_along_rows` computed ``rows`` rows at a time (bounded temporaries)."""
    idx = np.empty(valid.shape, dtype=np.int32)
    dist = np.empty(valid.shape, dtype=np.int32)
    for r0 in range(0, valid.shape[0], rows):
        idx[r0 : r0 + rows], dist[r0 : r0 + rows] = _nearest_along_rows(valid[r0 : r0 + rows])
    return idx, dist


def _nearest_source(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inv_rows, inv_cols, src_rows, src_cols): for every invalid pixel, a nearby valid one.

    The source is the nearest valid pixel along the pixel's row or column, whichever is closer.
    A pixel whose row and column hold no valid pixel takes, along its row, the nearest column
    that holds valid pixels, and in that column the valid pixel nearest to its row. ``valid``
    must hold at least one True. Memory: a few int32 arrays of the frame size.
    """
    inv_r, inv_c = np.nonzero(~valid)
    col_r, dist_r = _nearest_in_rows_chunked(valid)
    cand_c, d_row = col_r[inv_r, inv_c], dist_r[inv_r, inv_c]
    del col_r, dist_r
    row_ct, dist_ct = _nearest_in_rows_chunked(np.ascontiguousarray(valid.T))
    cand_r, d_col = row_ct[inv_c, inv_r], dist_ct[inv_c, inv_r]
    del dist_ct
    use_row = d_row <= d_col
    src_r = np.where(use_row, inv_r, cand_r)
    src_c = np.where(use_row, cand_c, inv_c)
    unresolved = np.minimum(d_row, d_col) >= _BIG
    if unresolved.any():
        near_col, _ = _nearest_along_rows(np.asarray(valid.any(axis=0))[None, :])
        c2 = near_col[0, inv_c[unresolved]]
        src_c[unresolved] = c2
        src_r[unresolved] = row_ct[c2, inv_r[unresolved]]
    return inv_r, inv_c, src_r, src_c


def fill_invalid(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace the pixels of ``data`` (H, W, C) where ``~valid`` (H, W) by a nearby valid pixel.

    The fill copies, for each invalid pixel, the nearest valid pixel along its row or column
    (whichever is closer; all bands from the same pixel), in O(H*W) numpy without scipy. It is
    meant to keep NaN and nodata out of the network's receptive field, not to be a good
    interpolation: the writers put nodata back on those pixels. When no pixel is valid, the
    frame is returned as zeros. Returns a new array unless every pixel is valid (then ``data``
    itself); ``data`` is never modified.
    """
    if valid.all():
        return data
    if not valid.any():
        return np.zeros_like(data)
    inv_r, inv_c, src_r, src_c = _nearest_source(valid)
    out = data.copy()
    out[inv_r, inv_c] = data[src_r, src_c]
    return out


@dataclass(frozen=True)
class _Frame:
    path: Path
    bands: tuple[int, ...]  # 1-based band indexes in ``path``


class GeoTiffStack:
    """A readable frame stack: one multi-band file split by ``bands_per_frame``, or many
    single-frame files on one grid. ``frame_names`` holds the file stem per frame (many files)
    or ``f"{stem}_t{i:04d}"`` (a split multi-band file).

    Made by :func:`open_geotiff_stack`. At most one dataset is open at a time (the file of the
    last frame read), so stacks of thousands of files do not run out of file handles.
    """

    meta: GeoMeta
    n_frames: int
    frame_names: tuple[str, ...]

    def __init__(self, meta: GeoMeta, frames: Sequence[_Frame], names: Sequence[str]) -> None:
        self.meta = meta
        self._frames = tuple(frames)
        self.n_frames = len(self._frames)
        self.frame_names = tuple(names)
        self._src: rasterio.DatasetReader | None = None
        self._src_path: Path | None = None

    def __len__(self) -> int:
        return self.n_frames

    def _dataset(self, path: Path) -> rasterio.DatasetReader:
        if self._src is None or self._src_path != path:
            self.close()
            self._src = _open(path)
            self._src_path = path
        return self._src

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i`` as ``(H, W, C)`` in the native dtype with nodata/NaN filled from the
        nearest valid pixel, plus the ``(H, W)`` bool mask (True = valid in all bands).

        Invalid means: masked by the dataset (nodata value, internal mask or alpha band) in any
        band, or not finite (NaN, +-inf) in a float band. See :func:`fill_invalid`.
        Raises InputError (naming the file) when the pixels cannot be decoded.
        """
        if not -self.n_frames <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range (0..{self.n_frames - 1})")
        frame = self._frames[i]
        src = self._dataset(frame.path)
        bands = list(frame.bands)
        try:
            arr = src.read(bands)
            flags = [src.mask_flag_enums[b - 1] for b in bands]
            if all(f == [MaskFlags.all_valid] for f in flags):
                valid = np.ones(arr.shape[1:], dtype=bool)
            else:
                valid = (src.read_masks(bands) != 0).all(axis=0)
        except (RasterioError, OSError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"{frame.path}: cannot read pixels, the file is damaged ({msg})"
            ) from None
        if arr.dtype.kind == "f":
            valid &= np.isfinite(arr).all(axis=0)
        data = np.moveaxis(arr, 0, -1)
        return fill_invalid(data, valid), valid

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self.n_frames):
            yield self.read(i)

    def close(self) -> None:
        """Close the open dataset (reading again reopens it)."""
        if self._src is not None:
            self._src.close()
        self._src = None
        self._src_path = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_tif(p: Path) -> bool:
    return p.suffix.lower() in GEOTIFF_SUFFIXES and not p.name.startswith(".")


def _resolve_files(spec: str | Path) -> list[Path]:
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and _is_tif(p)]
        where = f"folder {path}"
    elif path.is_file():
        return [path]
    elif any(ch in text for ch in "*?["):
        files = [Path(p) for p in _glob.glob(os.path.expanduser(text)) if Path(p).is_file()]
        files = [p for p in files if _is_tif(p)]
        where = f"pattern {text}"
    else:
        raise InputError(f"{text}: no such file or folder")
    if not files:
        raise InputError(f"{where}: no GeoTIFF (.tif/.tiff) files found")
    return sorted(files, key=lambda p: natural_key(p.name))


def _check_same(path: Path, first: rasterio.DatasetReader, src: rasterio.DatasetReader) -> None:
    ref = first.name
    if (src.width, src.height) != (first.width, first.height):
        raise InputError(
            f"{path}: size {src.width}x{src.height} differs from {first.width}x{first.height} "
            f"of {ref}"
        )
    if src.count != first.count:
        raise InputError(f"{path}: {src.count} bands, but {ref} has {first.count}")
    if src.dtypes[0] != first.dtypes[0]:
        raise InputError(f"{path}: dtype {src.dtypes[0]} differs from {first.dtypes[0]} of {ref}")
    if src.crs != first.crs:
        raise InputError(
            f"{path}: CRS {src.crs.to_string() if src.crs else None} differs from "
            f"{first.crs.to_string() if first.crs else None} of {ref}"
        )
    if not _same_grid(first.transform, src.transform, src.width, src.height):
        raise InputError(
            f"{path}: geotransform {tuple(src.transform)[:6]} differs from "
            f"{tuple(first.transform)[:6]} of {ref} (all frames must be on one grid)"
        )
    a, b = src.nodata, first.nodata
    same_nodata = (a is None and b is None) or (
        a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b)))
    )
    if not same_nodata:
        raise InputError(f"{path}: nodata {a} differs from {b} of {ref}")


def open_geotiff_stack(spec: str | Path, *, bands_per_frame: int | None = None) -> GeoTiffStack:
    """Open a folder, a glob or one file as a frame stack (files in natural name order).

    ``bands_per_frame`` splits each file's bands into consecutive groups, one frame per group
    (frame-major: bands 1..k are frame 0); by default each file is one frame. Frame names are
    the file stem when a file holds one frame, else ``f"{stem}_t{j:04d}"``. Hidden files
    (names starting with ``.``, e.g. a writer's temp files) are skipped.

    Every file is opened once here (header only, plus a check that no data block lies past the
    end of the file). Raises InputError (one line naming the file and the problem) on files
    with different size/CRS/transform/band count/dtype/nodata, an unreadable or truncated file,
    zero frames, duplicate frame names, or a band count not divisible by ``bands_per_frame``.
    """
    if bands_per_frame is not None and bands_per_frame < 1:
        raise InputError(f"--bands-per-frame must be at least 1, got {bands_per_frame}")
    files = _resolve_files(spec)
    frames: list[_Frame] = []
    names: list[str] = []
    meta: GeoMeta | None = None
    first = _open(files[0])
    try:
        for n, path in enumerate(files):
            src = first if n == 0 else _open(path)
            try:
                if n:
                    _check_same(path, first, src)
                _block_windows_check(src, path)
                bpf = bands_per_frame or src.count
                if src.count % bpf:
                    raise InputError(
                        f"{path}: {src.count} bands cannot be split into frames of "
                        f"{bands_per_frame} bands"
                    )
                k = src.count // bpf
                for j in range(k):
                    frames.append(_Frame(path, tuple(range(j * bpf + 1, (j + 1) * bpf + 1))))
                    names.append(path.stem if k == 1 else f"{path.stem}_t{j:04d}")
                if meta is None:
                    meta = _meta_from(src, frames[0].bands, tuple(files))
            finally:
                if n:
                    src.close()
    finally:
        first.close()
    if not frames or meta is None:
        raise InputError(f"{spec}: no frames found")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"{spec}: several files give the same frame name {min(dup)!r}")
    return GeoTiffStack(meta, frames, names)


def is_geotiff(path: Path) -> bool:
    """True for a ``.tif``/``.tiff`` file that carries georeferencing (CRS, a geotransform,
    GCPs or RPCs).

    Only the header is read. A plain TIFF frame (no georeferencing) gives False, so that it
    goes to the ordinary image reader; a file that cannot be opened gives False.
    """
    path = Path(path)
    if path.suffix.lower() not in GEOTIFF_SUFFIXES or not path.is_file():
        return False
    try:
        with _quiet(), rasterio.open(path) as src:
            if src.driver not in ("GTiff", "COG"):
                return False
            return bool(src.crs or src.gcps[0] or src.rpcs or src.transform != Affine.identity())
    except (RasterioError, OSError):
        return False


_INT_RANGES: dict[str, tuple[float, float]] = {
    name: (float(np.iinfo(name).min), float(np.iinfo(name).max))
    for name in ("uint8", "int8", "uint16", "int16", "uint32", "int32")
}


def value_range(meta: GeoMeta, override: tuple[float, float] | None = None) -> tuple[float, float]:
    """The (lo, hi) normalisation range: override > metadata > integer dtype full range.

    Metadata that counts (in ``meta.value_range``, read when the stack is opened):

    1. the dataset tag ``SATVSR_VALUE_RANGE="LO,HI"`` (satvsr writes it on its outputs, and a
       user can set it with ``gdal_edit.py -mo``);
    2. ``NBITS`` in the ``IMAGE_STRUCTURE`` domain for unsigned integers (e.g. 12-bit data in
       uint16 gives 0..4095).

    ``STATISTICS_*`` tags are ignored on purpose: they are a summary of one file's pixels and
    would make the normalisation change from frame to frame. The range is never derived from
    pixel values. A float raster with neither an override nor metadata raises InputError asking
    for ``--value-range LO,HI``.
    """
    if override is not None:
        lo, hi = float(override[0]), float(override[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise InputError(f"--value-range {lo},{hi}: LO must be smaller than HI")
        return lo, hi
    if meta.value_range is not None:
        return meta.value_range
    if meta.dtype in _INT_RANGES:
        return _INT_RANGES[meta.dtype]
    where = meta.source_paths[0] if meta.source_paths else "input"
    raise InputError(
        f"{where}: {meta.dtype} data has no value range in its metadata; "
        "pass --value-range LO,HI (e.g. --value-range 0,2047 for 11-bit data)"
    )


# --------------------------------------------------------------------------------------------
# Georeferencing of the x-scale grid
# --------------------------------------------------------------------------------------------


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
    transform = _compose(meta.transform, Affine.scale(1 / s))
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


def upsample_mask(valid: np.ndarray, scale: int = 4) -> np.ndarray:
    """Nearest-neighbour x``scale`` upsampling of an ``(H, W)`` bool mask."""
    return np.repeat(np.repeat(np.asarray(valid, dtype=bool), scale, axis=0), scale, axis=1)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _gdal_env() -> rasterio.Env:
    return rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, GDAL_NUM_THREADS="ALL_CPUS")


def _check_compress(compress: str) -> str:
    c = compress.lower()
    if c not in COMPRESSIONS:
        raise OutputError(f"--compress {compress}: choose one of {', '.join(COMPRESSIONS)}")
    return c


def _out_profile(
    meta: GeoMeta, scale: int, count: int, compress: str, *, interleave: str
) -> dict[str, Any]:
    width, height = meta.width * scale, meta.height * scale
    block = 512 if min(width, height) >= 1024 else 256
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": meta.dtype,
        "nodata": meta.nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "bigtiff": "IF_SAFER",
        "num_threads": "ALL_CPUS",
        "interleave": interleave,
    }
    if compress != "none":
        profile["compress"] = compress
        profile["predictor"] = 3 if np.dtype(meta.dtype).kind == "f" else 2
    if meta.crs_wkt is not None and meta.has_geotransform:
        profile["crs"] = CRS.from_wkt(meta.crs_wkt)
    if meta.has_geotransform:
        profile["transform"] = _compose(meta.transform, Affine.scale(1 / scale))
    return profile


def _provenance_tags(
    meta: GeoMeta,
    scale: int,
    tags: dict[str, str] | None,
    source_tags: dict[str, str] | None = None,
) -> dict[str, str]:
    """Source tags (``source_tags`` or ``meta.tags``) + satvsr's provenance + ``tags``."""
    src = meta.tags if source_tags is None else source_tags
    out = {k: v for k, v in src.items() if k not in _OWN_TAGS}
    if meta.value_range is not None and VALUE_RANGE_TAG not in out:
        out[VALUE_RANGE_TAG] = f"{meta.value_range[0]:g},{meta.value_range[1]:g}"
    now = _dt.datetime.now(_dt.UTC)
    out.update(
        TIFFTAG_SOFTWARE=f"satvsr {__version__}",
        TIFFTAG_DATETIME=now.strftime("%Y:%m:%d %H:%M:%S"),
        SATVSR_SCALE=str(scale),
        SATVSR_NOTE=AI_NOTE,
    )
    if meta.area_or_point:
        out["AREA_OR_POINT"] = meta.area_or_point
    out.update({str(k): str(v) for k, v in (tags or {}).items()})
    return out


def _apply_band_meta(
    dst: Any,
    meta: GeoMeta,
    scale: int,
    n_groups: int,
    descriptions: Sequence[str | None],
) -> None:
    """Georeferencing extras and per-band metadata on an open writable dataset."""
    _, gcps, rpcs = scaled_georef(meta, scale)
    if gcps:
        gcrs = CRS.from_wkt(meta.gcps_crs_wkt) if meta.gcps_crs_wkt else None
        dst.gcps = (list(gcps), gcrs)
    if rpcs:
        dst.rpcs = _dict_to_rpcs(rpcs)
    k = meta.count
    if len(meta.colorinterp) == k:
        ci = [ColorInterp[name] for name in meta.colorinterp] * n_groups
        with contextlib.suppress(RasterioError, ValueError):
            dst.colorinterp = ci
    if len(meta.scales) == k and any(v != 1.0 for v in meta.scales):
        dst.scales = list(meta.scales) * n_groups
    if len(meta.offsets) == k and any(v != 0.0 for v in meta.offsets):
        dst.offsets = list(meta.offsets) * n_groups
    if len(meta.units) == k and any(meta.units):
        dst.units = [u or "" for u in meta.units] * n_groups
    for b, desc in enumerate(descriptions, start=1):
        if desc:
            dst.set_band_description(b, desc)


def _restore_nodata(meta: GeoMeta, data: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``data`` (h, w, C) as (C, h, w) with nodata where ``~valid``.

    A valid pixel whose value happens to equal the nodata value is moved one step away from it
    (integers: +-1; floats: the next representable value), because it would otherwise read
    back as nodata. Without a nodata value, floats get NaN and integers are left as they are
    (the mask is then written as an internal mask band).
    """
    arr = np.moveaxis(np.asarray(data), -1, 0)
    fill: float | None = meta.nodata
    if fill is None and arr.dtype.kind == "f":
        fill = float("nan")
    if fill is None:
        return arr
    nod = np.asarray(fill, dtype=arr.dtype)
    if not math.isnan(fill):
        clash = arr == nod
        if valid is not None:
            clash &= valid[None]
        if clash.any():
            if arr.dtype.kind == "f":
                away = np.nextafter(nod, np.asarray(np.inf, dtype=arr.dtype))
            else:
                away = nod + 1 if nod < np.iinfo(arr.dtype).max else nod - 1
            arr = np.where(clash, np.asarray(away, dtype=arr.dtype), arr)
    if valid is None or valid.all():
        return arr
    return np.where(valid[None], arr, nod)


def _write_rows(
    dst: Any,
    meta: GeoMeta,
    data: np.ndarray,
    valid: np.ndarray | None,
    indexes: list[int],
    rows: int,
    *,
    mask: bool,
) -> None:
    """Write ``data`` (sH, sW, C) into bands ``indexes`` one block row at a time, so that only
    a strip is copied (nodata restored) at once and every tile is written whole."""
    height, width = data.shape[:2]
    for y0 in range(0, height, rows):
        h = min(rows, height - y0)
        v = None if valid is None else valid[y0 : y0 + h]
        window = Window(0, y0, width, h)
        dst.write(_restore_nodata(meta, data[y0 : y0 + h], v), indexes=indexes, window=window)
        if mask and v is not None:
            dst.write_mask(v, window=window)


def _check_frame(meta: GeoMeta, scale: int, data: np.ndarray, valid: np.ndarray | None) -> None:
    want = (meta.height * scale, meta.width * scale, meta.count)
    if data.ndim != 3 or tuple(data.shape) != want:
        raise ValueError(f"frame must have shape {want}, got {tuple(data.shape)}")
    if data.dtype != np.dtype(meta.dtype):
        raise ValueError(
            f"frame must already be {meta.dtype} (the caller clips and rounds), got {data.dtype}"
        )
    if valid is not None and tuple(valid.shape) != want[:2]:
        raise ValueError(f"valid mask must have shape {want[:2]}, got {tuple(valid.shape)}")


def _needs_mask(meta: GeoMeta, valid: np.ndarray | None) -> bool:
    return (
        valid is not None
        and meta.nodata is None
        and np.dtype(meta.dtype).kind != "f"
        and not bool(valid.all())
    )


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp.tif")


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".aux.xml"), Path(str(path) + ".msk")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _build_overviews(dst: Any, width: int, height: int) -> None:
    factors = [f for f in (2, 4, 8, 16, 32, 64) if min(width, height) // f >= 256]
    if factors:
        dst.build_overviews(factors, Resampling.average)
        dst.update_tags(ns="rio_overview", resampling="average")


def _finish(tmp: Path, final: Path, *, cog: bool, compress: str) -> Path:
    """Convert ``tmp`` to a COG if asked, then rename it to ``final`` (sidecars too)."""
    src_file = tmp
    if cog:
        cog_tmp = _temp_name(final)
        try:
            opts: dict[str, Any] = {
                "compress": compress.upper(),
                "blocksize": 512,
                "overview_resampling": "average",
                "bigtiff": "IF_SAFER",
                "num_threads": "ALL_CPUS",
            }
            if compress != "none":
                opts["predictor"] = "YES"
            with _gdal_env():
                rasterio.shutil.copy(str(tmp), str(cog_tmp), driver="COG", **opts)
        except BaseException:
            _remove(cog_tmp)
            raise
        finally:
            _remove(tmp)
        src_file = cog_tmp
    try:
        os.replace(src_file, final)
        aux = Path(str(src_file) + ".aux.xml")
        if aux.exists():
            os.replace(aux, Path(str(final) + ".aux.xml"))
    except BaseException:
        _remove(src_file)
        raise
    return final


def _is_complete(path: Path, meta: GeoMeta, scale: int, count: int) -> bool:
    if not path.is_file():
        return False
    try:
        with _quiet(), rasterio.open(path) as dst:
            if (dst.width, dst.height, dst.count) != (
                meta.width * scale,
                meta.height * scale,
                count,
            ):
                return False
            if dst.dtypes[0] != meta.dtype:
                return False
            a, b = dst.nodata, meta.nodata
            if (a is None) != (b is None) or (
                a is not None and b is not None and a != b and not (math.isnan(a) and math.isnan(b))
            ):
                return False
            if meta.has_geotransform:
                want_crs = CRS.from_wkt(meta.crs_wkt) if meta.crs_wkt else None
                if dst.crs != want_crs:
                    return False
                want = _compose(meta.transform, Affine.scale(1 / scale))
                if not _same_grid(want, dst.transform, dst.width, dst.height):
                    return False
            if dst.tags().get("SATVSR_NOTE") != AI_NOTE:
                return False
            _block_windows_check(dst, path)
            # Decode the last and first block of the last band: truncation and corruption show.
            bh, bw = dst.block_shapes[0]
            last = Window(
                (dst.width - 1) // bw * bw,
                (dst.height - 1) // bh * bh,
                min(bw, dst.width - (dst.width - 1) // bw * bw),
                min(bh, dst.height - (dst.height - 1) // bh * bh),
            )
            dst.read(dst.count, window=last)
            dst.read(dst.count, window=Window(0, 0, min(bw, dst.width), min(bh, dst.height)))
    except (RasterioError, OSError, InputError, ValueError):
        return False
    return True


class GeoTiffFramesWriter:
    """Writes one GeoTIFF per frame into ``out_dir`` (``<name>.tif``), atomically.

    ``data`` passed to :meth:`write` must already be in the native dtype (the caller clips and
    rounds); nodata is restored where ``~valid``. For integer data without a nodata value the
    mask is stored as an internal mask band; float data without nodata gets NaN.
    ``band_descriptions`` replaces the source's descriptions (e.g. to tag bicubic bands).
    ``tags`` (e.g. ``SATVSR_MODEL``, ``SATVSR_WEIGHTS_SHA256``) are added to the provenance
    tags; ``overviews`` builds average overviews on non-COG output.
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
        self.out_dir = Path(out_dir)
        self.meta = meta
        self.scale = int(scale)
        self.compress = _check_compress(compress)
        self.cog = cog
        self.overviews = overviews
        self.tags = dict(tags or {})
        descs = band_descriptions if band_descriptions is not None else meta.band_descriptions
        if len(descs) not in (0, meta.count):
            raise ValueError(f"band_descriptions needs {meta.count} entries, got {len(descs)}")
        self.band_descriptions: tuple[str | None, ...] = tuple(descs)
        paths = meta.source_paths
        self._by_stem = {p.stem: p for p in paths} if len(paths) > 1 else {}
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.out_dir}: cannot create the output folder ({exc})") from None

    def path_for(self, name: str) -> Path:
        """The output path for frame ``name``: ``out_dir / f"{name}.tif"``."""
        return self.out_dir / f"{name}.tif"

    def is_complete(self, name: str) -> bool:
        """True if the output exists, opens, has the right size, dtype, band count, CRS and
        transform, carries satvsr's tags, and its first and last blocks decode (for resume)."""
        return _is_complete(self.path_for(name), self.meta, self.scale, self.meta.count)

    def _source_tags(self, name: str) -> dict[str, str] | None:
        """The dataset tags of the source file whose stem is ``name`` (many-file stacks)."""
        path = self._by_stem.get(name)
        if path is None:
            return None
        try:
            with _quiet(), rasterio.open(path) as src:
                return {k: v for k, v in src.tags().items() if k != "AREA_OR_POINT"}
        except (RasterioError, OSError):
            return None

    def write(
        self,
        name: str,
        data: np.ndarray,
        valid: np.ndarray | None = None,
        *,
        tags: dict[str, str] | None = None,
    ) -> Path:
        """Write ``(sH, sW, C)`` ``data`` (native dtype) to a temp name in the same folder and
        ``os.replace`` it into place; nodata where ``~valid``. On any error the temp file is
        removed and an existing output is left as it was.

        The dataset tags copied from the source are those of the source file named ``name``
        when the stack came from several files (so per-frame metadata such as acquisition
        times stays with its frame), else ``meta.tags``. ``tags`` adds per-frame tags (e.g.
        ``SATVSR_SOURCE_FRAME``) on top of the writer's tags.
        """
        _check_frame(self.meta, self.scale, data, valid)
        all_tags = _provenance_tags(
            self.meta, self.scale, {**self.tags, **(tags or {})}, self._source_tags(name)
        )
        final = self.path_for(name)
        tmp = _temp_name(final)
        profile = _out_profile(
            self.meta, self.scale, self.meta.count, self.compress, interleave="pixel"
        )
        indexes = list(range(1, self.meta.count + 1))
        try:
            with _gdal_env(), _quiet(), rasterio.open(tmp, "w", **profile) as dst:
                dst.update_tags(**all_tags)
                _apply_band_meta(dst, self.meta, self.scale, 1, self.band_descriptions)
                _write_rows(
                    dst,
                    self.meta,
                    data,
                    valid,
                    indexes,
                    profile["blockysize"],
                    mask=_needs_mask(self.meta, valid),
                )
                if self.overviews and not self.cog:
                    _build_overviews(dst, profile["width"], profile["height"])
        except BaseException as exc:
            _remove(tmp)
            if isinstance(exc, (RasterioError, OSError)):
                raise OutputError(f"{final}: cannot write ({exc})") from None
            raise
        return _finish(tmp, final, cog=self.cog, compress=self.compress)


class GeoTiffStackWriter:
    """Writes one stacked GeoTIFF of all frames (frame-major band order: bands
    ``i*C+1 .. (i+1)*C`` are frame ``i``) to a temp name; :meth:`commit` renames it into place,
    :meth:`abort` removes it.

    The file is band-interleaved so that each frame's bands are written once, as they come.
    Which frame each band group is: dataset tag ``SATVSR_FRAMES`` (JSON list of frame names)
    and band tags ``SATVSR_FRAME`` / ``SATVSR_FRAME_INDEX``; band descriptions are
    ``"{frame}:{description}"`` (or just ``"{frame}"``). Frames not written before
    :meth:`commit` make it fail. Usable as a context manager (aborts on an exception).
    """

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
        if n_frames < 1:
            raise ValueError("n_frames must be at least 1")
        self.out_path = Path(out_path)
        self.meta = meta
        self.n_frames = n_frames
        self.scale = int(scale)
        self.compress = _check_compress(compress)
        self.cog = cog
        self.overviews = overviews
        names = (
            frame_names if frame_names is not None else tuple(f"t{i:04d}" for i in range(n_frames))
        )
        if len(names) != n_frames:
            raise ValueError(f"frame_names needs {n_frames} entries, got {len(names)}")
        self.frame_names = tuple(names)
        descs = band_descriptions if band_descriptions is not None else meta.band_descriptions
        if len(descs) not in (0, meta.count):
            raise ValueError(f"band_descriptions needs {meta.count} entries, got {len(descs)}")
        descs = tuple(descs) or (None,) * meta.count
        all_descs = [f"{fname}:{d}" if d else fname for fname in self.frame_names for d in descs]
        self._written = np.zeros(n_frames, dtype=bool)
        self._mask: np.ndarray | None = None
        self._tmp = _temp_name(self.out_path)
        self._closed = False
        count = meta.count * n_frames
        self._profile = _out_profile(meta, self.scale, count, self.compress, interleave="band")
        all_tags = _provenance_tags(meta, self.scale, tags)
        all_tags["SATVSR_FRAMES"] = json.dumps(list(self.frame_names))
        try:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            with _gdal_env(), _quiet():
                self._dst = rasterio.open(self._tmp, "w", **self._profile)
                self._dst.update_tags(**all_tags)
                _apply_band_meta(self._dst, meta, self.scale, n_frames, all_descs)
                for i, fname in enumerate(self.frame_names):
                    for b in range(meta.count):
                        self._dst.update_tags(
                            i * meta.count + b + 1, SATVSR_FRAME=fname, SATVSR_FRAME_INDEX=str(i)
                        )
        except BaseException as exc:
            self._cleanup()
            if isinstance(exc, (RasterioError, OSError)):
                raise OutputError(f"{self.out_path}: cannot write ({exc})") from None
            raise

    def write(self, i: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write frame ``i`` (``(sH, sW, C)``, native dtype) into its band group."""
        if self._closed:
            raise RuntimeError("the stack writer is already committed or aborted")
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range (0..{self.n_frames - 1})")
        _check_frame(self.meta, self.scale, data, valid)
        k = self.meta.count
        indexes = list(range(i * k + 1, (i + 1) * k + 1))
        try:
            with _gdal_env():
                _write_rows(
                    self._dst,
                    self.meta,
                    data,
                    valid,
                    indexes,
                    self._profile["blockysize"],
                    mask=False,
                )
        except (RasterioError, OSError) as exc:
            raise OutputError(f"{self.out_path}: cannot write frame {i} ({exc})") from None
        if _needs_mask(self.meta, valid):
            assert valid is not None
            # One dataset mask for the whole stack: a pixel is masked if any frame masks it.
            self._mask = valid.copy() if self._mask is None else (self._mask & valid)
        self._written[i] = True

    def commit(self) -> Path:
        """Finish the file (overviews or COG conversion if asked) and rename it to
        ``out_path``. Raises OutputError if some frame was never written."""
        if self._closed:
            raise RuntimeError("the stack writer is already committed or aborted")
        missing = np.flatnonzero(~self._written)
        if missing.size:
            self.abort()
            raise OutputError(
                f"{self.out_path}: {missing.size} frame(s) were not written "
                f"(first: {int(missing[0])}); nothing saved"
            )
        try:
            with _gdal_env():
                if self._mask is not None:
                    self._dst.write_mask(self._mask)
                if self.overviews and not self.cog:
                    _build_overviews(self._dst, self._profile["width"], self._profile["height"])
                self._dst.close()
            self._closed = True
            return _finish(self._tmp, self.out_path, cog=self.cog, compress=self.compress)
        except BaseException:
            self._cleanup()
            raise

    def abort(self) -> None:
        """Remove the temp file; ``out_path`` is left untouched. Safe to call twice."""
        self._cleanup()

    def _cleanup(self) -> None:
        dst = getattr(self, "_dst", None)
        if dst is not None and not dst.closed:
            with contextlib.suppress(Exception):
                dst.close()
        self._closed = True
        _remove(self._tmp)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._closed:
            self.abort()
