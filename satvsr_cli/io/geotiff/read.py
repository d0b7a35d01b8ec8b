"""Reading GeoTIFF frame stacks one frame at a time (:func:`open_geotiff_stack`)."""

from __future__ import annotations

import glob as _glob
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError

from satvsr_cli.errors import InputError
from satvsr_cli.io.base import natural_key
from satvsr_cli.io.geotiff.meta import GEOTIFF_SUFFIXES, GeoMeta, meta_from, quiet, same_grid
from satvsr_cli.io.geotiff.nodata import fill_invalid


def check_blocks(src: rasterio.DatasetReader, path: Path, limit: int = 1024) -> None:
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


def open_raster(path: Path) -> rasterio.DatasetReader:
    try:
        with quiet():
            return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as a raster ({msg})") from None


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
            self._src = open_raster(path)
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
    if not same_grid(first.transform, src.transform, src.width, src.height):
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
    first = open_raster(files[0])
    try:
        for n, path in enumerate(files):
            src = first if n == 0 else open_raster(path)
            try:
                if n:
                    _check_same(path, first, src)
                check_blocks(src, path)
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
                    meta = meta_from(src, frames[0].bands, tuple(files))
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
        with quiet(), rasterio.open(path) as src:
            if src.driver not in ("GTiff", "COG"):
                return False
            return bool(src.crs or src.gcps[0] or src.rpcs or src.transform != Affine.identity())
    except (RasterioError, OSError):
        return False
