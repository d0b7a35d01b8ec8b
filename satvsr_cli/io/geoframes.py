"""Adapters from :mod:`satvsr_cli.io.geotiff` to the engine's source/sink interface (with resume)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from satvsr_cli.errors import OutputError
from satvsr_cli.fsutil import kill_point
from satvsr_cli.io.base import (
    FolderSink,
    Frame,
    FrameSink,
    FrameSource,
    RowWriter,
    SourceInfo,
    file_identity,
    partial_path,
    remove_path,
)
from satvsr_cli.io.geotiff import (
    GeoMeta,
    GeoRowWriter,
    GeoTiffFramesWriter,
    GeoTiffStackWriter,
    open_geotiff_stack,
)


class GeoTiffSource(FrameSource):
    """A GeoTIFF frame stack read one frame at a time (nodata filled; the valid mask kept)."""

    def __init__(self, spec: str | Path, *, bands_per_frame: int | None = None) -> None:
        """Open the stack; InputError for different grids, unreadable files or zero frames."""
        self.stack = open_geotiff_stack(spec, bands_per_frame=bands_per_frame)
        meta = self.stack.meta
        files = tuple(meta.source_paths)
        self.info = SourceInfo(
            kind="geotiff",
            spec=str(spec),
            width=meta.width,
            height=meta.height,
            bands=meta.count,
            dtype=meta.dtype,
            n_frames=self.stack.n_frames,
            frame_names=tuple(self.stack.frame_names),
            frame_suffix=".tif",
            bit_depth=np.dtype(meta.dtype).itemsize * 8,
            value_range=meta.value_range,
            geo=meta,
            files=files,
            identity={"spec": str(spec), "bands_per_frame": bands_per_frame,
                      **file_identity(list(files))},
        )

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Frames from ``start`` on, as (H, W, C) native arrays with their valid masks."""
        for i in range(start, self.stack.n_frames):
            data, valid = self.stack.read(i)
            yield Frame(i, data, None if bool(valid.all()) else valid)

    def close(self) -> None:
        """Close the open dataset."""
        self.stack.close()


class GeoFramesSink(FolderSink):
    """One GeoTIFF per frame (source names) into ``OUT.partial/``, renamed to ``OUT/`` at the end."""

    def __init__(
        self,
        path: Path,
        meta: GeoMeta,
        *,
        names: list[str],
        first_index: int,
        compress: str,
        cog: bool,
        overviews: bool,
        tags: dict[str, str],
        band_descriptions: tuple[str | None, ...] | None,
        resume: bool,
    ) -> None:
        """Prepare the work folder; with ``resume`` keep (and verify) earlier outputs."""
        self.path = path
        self.workdir = partial_path(path)
        self.names = names
        self.first = first_index
        self.writer = GeoTiffFramesWriter(
            self.workdir, meta, compress=compress, cog=cog, tags=tags,
            band_descriptions=band_descriptions, overviews=overviews,
        )
        for p in self.workdir.glob(".*.tmp.tif"):
            p.unlink(missing_ok=True)
        self._done: set[int] = set()
        if resume:
            for i, name in enumerate(names):
                if self.writer.is_complete(name):
                    self._done.add(first_index + i)
                else:
                    self.writer.path_for(name).unlink(missing_ok=True)

    def done(self) -> set[int]:
        """Frames already written and verified."""
        return set(self._done)

    def write(self, index: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Write one frame (atomic inside the writer)."""
        self.writer.write(
            self.names[index - self.first], data, valid, tags={"SATVSR_SOURCE_FRAME": str(index)}
        )
        self._done.add(index)

    def open_rows(self, index: int, has_invalid: bool) -> GeoRowWriter:
        """A row writer for frame ``index`` (see :class:`GeoRowWriter`)."""
        return self.writer.open_rows(self.names[index - self.first], has_invalid,
                                     tags={"SATVSR_SOURCE_FRAME": str(index)})

    def close_rows(self, index: int, rows: RowWriter) -> None:
        """Finish a frame written through :meth:`open_rows`."""
        rows.close()
        self._done.add(index)


class GeoStackSink(FrameSink):
    """One stacked GeoTIFF. Frames go to per-frame GeoTIFFs in ``OUT.partial/`` first (so a run
    can resume), and :meth:`commit` assembles them into ``OUT`` frame by frame."""

    def __init__(
        self,
        path: Path,
        meta: GeoMeta,
        *,
        names: list[str],
        first_index: int,
        compress: str,
        cog: bool,
        overviews: bool,
        tags: dict[str, str],
        band_descriptions: tuple[str | None, ...] | None,
        resume: bool,
    ) -> None:
        """See the class docstring."""
        self.path = path
        self.meta = meta
        self.names = names
        self.first = first_index
        self.compress, self.cog, self.overviews = compress, cog, overviews
        self.tags = tags
        self.band_descriptions = band_descriptions
        for p in path.parent.glob(f".{path.name}.*.tmp.tif"):
            p.unlink(missing_ok=True)  # the temp file of a commit that was killed
        numbered = [f"{first_index + i:06d}" for i in range(len(names))]
        self.frames = GeoFramesSink(
            path, meta, names=numbered, first_index=first_index, compress=compress, cog=False,
            overviews=False, tags=tags, band_descriptions=band_descriptions, resume=resume,
        )

    def done(self) -> set[int]:
        """Frames already written and verified."""
        return self.frames.done()

    def write(self, index: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Write one frame into the work folder."""
        self.frames.write(index, data, valid)

    def open_rows(self, index: int, has_invalid: bool) -> GeoRowWriter:
        """A row writer for frame ``index`` in the work folder."""
        return self.frames.open_rows(index, has_invalid)

    def close_rows(self, index: int, rows: RowWriter) -> None:
        """Finish a frame written through :meth:`open_rows`."""
        self.frames.close_rows(index, rows)

    def commit(self) -> Path:
        """Assemble the stacked GeoTIFF from the per-frame files and remove them."""
        n = len(self.names)
        writer = GeoTiffStackWriter(
            self.path, self.meta, n, compress=self.compress, cog=self.cog, tags=self.tags,
            band_descriptions=self.band_descriptions, frame_names=tuple(self.names),
            overviews=self.overviews,
        )
        try:
            for i in range(n):
                p = self.frames.writer.path_for(f"{self.first + i:06d}")
                if not p.is_file():
                    raise OutputError(f"{self.path}: frame {self.first + i} is missing")
                with open_geotiff_stack(p) as one:
                    data, valid = one.read(0)
                writer.write(i, data, None if bool(valid.all()) else valid)
            out = writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                writer.abort()
            raise
        kill_point("after-rename")  # OUT.partial/ goes after the rename: --resume redoes it
        remove_path(self.frames.workdir)
        return out

    def abort(self) -> None:
        """Remove the work folder."""
        self.frames.abort()

    def state(self) -> dict[str, Any]:
        """No extra state (files are the truth)."""
        return {}
