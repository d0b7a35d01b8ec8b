"""Writing x4 GeoTIFF frames (one file per frame, whole or row strip by row strip) with scaled
georeferencing, provenance tags and atomic renames (see ``docs/geotiff.md``)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from satvsr_cli import __version__
from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.fsutil import write_failure
from satvsr_cli.io.geotiff.meta import (
    AI_NOTE,
    VALUE_RANGE_TAG,
    GeoMeta,
    compose,
    dict_to_rpcs,
    quiet,
    same_grid,
    scaled_georef,
)
from satvsr_cli.io.geotiff.nodata import needs_mask, restore_nodata
from satvsr_cli.io.geotiff.read import check_blocks
from satvsr_cli.options import Compression, choice

# Tags that the writers set themselves and never copy from the source.
_OWN_TAGS = ("TIFFTAG_SOFTWARE", "TIFFTAG_DATETIME", "AREA_OR_POINT")


def gdal_env() -> rasterio.Env:
    return rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, GDAL_NUM_THREADS="ALL_CPUS")


def check_compress(compress: str) -> Compression:
    """``compress`` as a :class:`~satvsr_cli.options.Compression` (OutputError when unknown)."""
    return choice(Compression, compress, error=OutputError, label="--compress")


def out_profile(
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
        profile["transform"] = compose(meta.transform, Affine.scale(1 / scale))
    return profile


def build_datetime() -> str | None:
    """``TIFFTAG_DATETIME`` of outputs: ``SOURCE_DATE_EPOCH`` (seconds since 1970, as
    reproducible-build tools set it) in UTC, or ``None`` (no time stamp) when it is not set, so
    that the same job gives the same bytes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return None
    try:
        when = _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise OutputError(
            f"SOURCE_DATE_EPOCH must be a whole number of seconds, got {epoch!r}"
        ) from None
    return when.strftime("%Y:%m:%d %H:%M:%S")


def provenance_tags(
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
    out.update(
        TIFFTAG_SOFTWARE=f"satvsr {__version__}",
        SATVSR_SCALE=str(scale),
        SATVSR_NOTE=AI_NOTE,
    )
    stamp = build_datetime()
    if stamp is not None:
        out["TIFFTAG_DATETIME"] = stamp
    if meta.area_or_point:
        out["AREA_OR_POINT"] = meta.area_or_point
    out.update({str(k): str(v) for k, v in (tags or {}).items()})
    return out


def apply_band_meta(
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
        dst.rpcs = dict_to_rpcs(rpcs)
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


def write_rows(
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
        dst.write(restore_nodata(meta, data[y0 : y0 + h], v), indexes=indexes, window=window)
        if mask and v is not None:
            dst.write_mask(v, window=window)


def check_frame(meta: GeoMeta, scale: int, data: np.ndarray, valid: np.ndarray | None) -> None:
    want = (meta.height * scale, meta.width * scale, meta.count)
    if data.ndim != 3 or tuple(data.shape) != want:
        raise ValueError(f"frame must have shape {want}, got {tuple(data.shape)}")
    if data.dtype != np.dtype(meta.dtype):
        raise ValueError(
            f"frame must already be {meta.dtype} (the caller clips and rounds), got {data.dtype}"
        )
    if valid is not None and tuple(valid.shape) != want[:2]:
        raise ValueError(f"valid mask must have shape {want[:2]}, got {tuple(valid.shape)}")


def temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp.tif")


def remove_outputs(path: Path) -> None:
    for p in (path, Path(str(path) + ".aux.xml"), Path(str(path) + ".msk")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def build_overviews(dst: Any, width: int, height: int) -> None:
    factors = [f for f in (2, 4, 8, 16, 32, 64) if min(width, height) // f >= 256]
    if factors:
        dst.build_overviews(factors, Resampling.average)
        dst.update_tags(ns="rio_overview", resampling="average")


def finish(tmp: Path, final: Path, *, cog: bool, compress: str) -> Path:
    """Convert ``tmp`` to a COG if asked, then rename it to ``final`` (sidecars too)."""
    src_file = tmp
    if cog:
        cog_tmp = temp_name(final)
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
            with gdal_env():
                rasterio.shutil.copy(str(tmp), str(cog_tmp), driver="COG", **opts)
        except BaseException:
            remove_outputs(cog_tmp)
            raise
        finally:
            remove_outputs(tmp)
        src_file = cog_tmp
    try:
        if not reads_back(src_file):
            # GDAL may not report a short write (disk full, file-size limit)
            raise OutputError(write_failure(final, written=src_file))
        os.replace(src_file, final)
        aux = Path(str(src_file) + ".aux.xml")
        if aux.exists():
            os.replace(aux, Path(str(final) + ".aux.xml"))
    except BaseException:
        remove_outputs(src_file)
        raise
    return final


def reads_back(path: Path) -> bool:
    """True when a just written GeoTIFF opens and its first and last blocks decode."""
    try:
        with quiet(), rasterio.open(path) as dst:
            bh, bw = dst.block_shapes[0]
            x0 = (dst.width - 1) // bw * bw
            y0 = (dst.height - 1) // bh * bh
            dst.read(dst.count, window=Window(x0, y0, dst.width - x0, dst.height - y0))
            dst.read(1, window=Window(0, 0, min(bw, dst.width), min(bh, dst.height)))
    except (RasterioError, OSError, ValueError):
        return False
    return True


def is_complete_file(path: Path, meta: GeoMeta, scale: int, count: int) -> bool:
    if not path.is_file():
        return False
    try:
        with quiet(), rasterio.open(path) as dst:
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
                want = compose(meta.transform, Affine.scale(1 / scale))
                if not same_grid(want, dst.transform, dst.width, dst.height):
                    return False
            if dst.tags().get("SATVSR_NOTE") != AI_NOTE:
                return False
            check_blocks(dst, path)
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
        self.compress = check_compress(compress)
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
        return is_complete_file(self.path_for(name), self.meta, self.scale, self.meta.count)

    def open_rows(self, name: str, has_invalid: bool, *, tags: dict[str, str] | None = None
                  ) -> GeoRowWriter:
        """A :class:`GeoRowWriter` for frame ``name``: the same file :meth:`write` would make,
        written row strip by row strip."""
        return GeoRowWriter(self, name, tags or {}, has_invalid)

    def source_tags(self, name: str) -> dict[str, str] | None:
        """The dataset tags of the source file whose stem is ``name`` (many-file stacks)."""
        path = self._by_stem.get(name)
        if path is None:
            return None
        try:
            with quiet(), rasterio.open(path) as src:
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
        check_frame(self.meta, self.scale, data, valid)
        all_tags = provenance_tags(
            self.meta, self.scale, {**self.tags, **(tags or {})}, self.source_tags(name)
        )
        final = self.path_for(name)
        tmp = temp_name(final)
        profile = out_profile(
            self.meta, self.scale, self.meta.count, self.compress, interleave="pixel"
        )
        indexes = list(range(1, self.meta.count + 1))
        try:
            with gdal_env(), quiet(), rasterio.open(tmp, "w", **profile) as dst:
                dst.update_tags(**all_tags)
                apply_band_meta(dst, self.meta, self.scale, 1, self.band_descriptions)
                write_rows(
                    dst,
                    self.meta,
                    data,
                    valid,
                    indexes,
                    profile["blockysize"],
                    mask=needs_mask(self.meta, valid),
                )
                if self.overviews and not self.cog:
                    build_overviews(dst, profile["width"], profile["height"])
        except BaseException as exc:
            remove_outputs(tmp)
            if isinstance(exc, (RasterioError, OSError)):
                raise OutputError(f"{final}: cannot write ({exc})") from None
            raise
        return finish(tmp, final, cog=self.cog, compress=self.compress)


class GeoRowWriter:
    """Writes one x4 GeoTIFF frame row strip by row strip (so the full frame is never in memory).

    The file gets exactly what :meth:`GeoTiffFramesWriter.write` would give it (same profile,
    tags, georeferencing and band metadata, nodata restored, temp name then rename); rows are
    buffered to whole block rows so that every compressed tile is written once. It follows the
    :class:`satvsr_cli.io.base.RowWriter` protocol.
    """

    def __init__(
        self, writer: GeoTiffFramesWriter, name: str, tags: dict[str, str], has_invalid: bool
    ) -> None:
        """Open the temp file for frame ``name`` of ``writer``."""
        self.w = writer
        self.meta = writer.meta
        self.final = writer.path_for(name)
        self.profile = out_profile(
            self.meta, writer.scale, self.meta.count, writer.compress, interleave="pixel"
        )
        self.tags = provenance_tags(
            self.meta, writer.scale, {**writer.tags, **tags}, writer.source_tags(name)
        )
        self.mask = (
            has_invalid and self.meta.nodata is None and np.dtype(self.meta.dtype).kind != "f"
        )
        self.block = int(self.profile["blockysize"])
        self._open()

    def _open(self) -> None:
        self.tmp = temp_name(self.final)
        self.next_row = 0
        self._buf: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._buffered = 0
        try:
            with gdal_env(), quiet():
                self.dst = rasterio.open(self.tmp, "w", **self.profile)
                self.dst.update_tags(**self.tags)
                apply_band_meta(self.dst, self.meta, self.w.scale, 1, self.w.band_descriptions)
        except (RasterioError, OSError) as exc:
            remove_outputs(self.tmp)
            raise OutputError(f"{self.final}: cannot write ({exc})") from None

    def write_rows(self, y0: int, rows: np.ndarray, valid: np.ndarray | None) -> None:
        """Take rows ``y0 ..`` as ``(C, n, sW)``; write every completed block row."""
        if y0 != self.next_row + self._buffered:
            raise RuntimeError(f"rows out of order: got {y0}, expected {self.next_row + self._buffered}")
        self._buf.append((rows, valid))
        self._buffered += rows.shape[1]
        height = self.profile["height"]
        while self._buffered >= self.block or (
            self._buffered and self.next_row + self._buffered >= height
        ):
            self._flush(min(self.block, self._buffered))

    def _flush(self, n: int) -> None:
        datas = [d for d, _v in self._buf]
        data = datas[0] if len(datas) == 1 else np.concatenate(datas, axis=1)
        vals = [v for _d, v in self._buf]
        valid = None
        if any(v is not None for v in vals):
            valid = np.concatenate(
                [v if v is not None else np.ones(d.shape[1:], bool)
                 for d, v in self._buf], axis=0
            )
        head, rest = data[:, :n], data[:, n:]
        vhead = None if valid is None else valid[:n]
        window = Window(0, self.next_row, self.profile["width"], n)
        try:
            with gdal_env():
                arr = restore_nodata(self.meta, np.moveaxis(head, 0, -1), vhead)
                self.dst.write(arr, window=window)
                if self.mask:
                    self.dst.write_mask(
                        vhead if vhead is not None else np.ones(head.shape[1:], bool),
                        window=window,
                    )
        except (RasterioError, OSError) as exc:
            raise OutputError(f"{self.final}: cannot write ({exc})") from None
        self.next_row += n
        self._buffered -= n
        self._buf = [(rest, None if valid is None else valid[n:])] if self._buffered else []

    def close(self) -> Path:
        """Finish the file (overviews/COG as the writer says) and rename it into place."""
        if self.next_row + self._buffered != self.profile["height"]:
            self.abort()
            raise RuntimeError("the frame is incomplete")
        try:
            with gdal_env():
                if self.w.overviews and not self.w.cog:
                    build_overviews(self.dst, self.profile["width"], self.profile["height"])
                self.dst.close()
        except (RasterioError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.final}: cannot write ({exc})") from None
        return finish(self.tmp, self.final, cog=self.w.cog, compress=self.w.compress)

    def abort(self) -> None:
        """Close and remove the temp file."""
        with contextlib.suppress(Exception):
            self.dst.close()
        remove_outputs(self.tmp)

    def reset(self) -> None:
        """Start the frame again (after an out-of-memory retry)."""
        self.abort()
        self._open()
