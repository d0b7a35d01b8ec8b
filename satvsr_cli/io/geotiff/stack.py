"""Writing one stacked GeoTIFF of all frames (:class:`GeoTiffStackWriter`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError

from satvsr_cli.errors import OutputError
from satvsr_cli.io.geotiff.meta import GeoMeta, quiet
from satvsr_cli.io.geotiff.nodata import needs_mask
from satvsr_cli.io.geotiff.write import (
    apply_band_meta,
    build_overviews,
    check_compress,
    check_frame,
    finish,
    gdal_env,
    out_profile,
    provenance_tags,
    remove_outputs,
    temp_name,
    write_rows,
)


class GeoTiffStackWriter:
    """Writes one stacked GeoTIFF of all frames (frame-major band order: bands
    ``i*C+1 .. (i+1)*C`` are frame ``i``) to a temp name; :meth:`commit` renames it into place,
    :meth:`abort` removes it.

    The file is band-interleaved so that each frame's bands are written once, as they come.
    Which frame each band group is: dataset tag ``SATVSR_FRAMES`` (JSON list of frame names)
    and band tags ``SATVSR_FRAME`` / ``SATVSR_FRAME_INDEX``; band descriptions are kept as they
    are (each frame's bands carry the source's descriptions, not prefixed with the frame name;
    ``band_descriptions`` replaces them, e.g. to mark bicubic bands). Frames not written before
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
        self.compress = check_compress(compress)
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
        all_descs = [d for _ in self.frame_names for d in descs]
        self._written = np.zeros(n_frames, dtype=bool)
        self._mask: np.ndarray | None = None
        self._tmp = temp_name(self.out_path)
        self._closed = False
        count = meta.count * n_frames
        self._profile = out_profile(meta, self.scale, count, self.compress, interleave="band")
        all_tags = provenance_tags(meta, self.scale, tags)
        all_tags["SATVSR_FRAMES"] = json.dumps(list(self.frame_names))
        try:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            with gdal_env(), quiet():
                self._dst = rasterio.open(self._tmp, "w", **self._profile)
                self._dst.update_tags(**all_tags)
                apply_band_meta(self._dst, meta, self.scale, n_frames, all_descs)
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
        check_frame(self.meta, self.scale, data, valid)
        k = self.meta.count
        indexes = list(range(i * k + 1, (i + 1) * k + 1))
        try:
            with gdal_env():
                write_rows(
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
        if needs_mask(self.meta, valid):
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
            with gdal_env():
                if self._mask is not None:
                    self._dst.write_mask(self._mask)
                if self.overviews and not self.cog:
                    build_overviews(self._dst, self._profile["width"], self._profile["height"])
                self._dst.close()
            self._closed = True
            return finish(self._tmp, self.out_path, cog=self.cog, compress=self.compress)
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
        remove_outputs(self._tmp)

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
