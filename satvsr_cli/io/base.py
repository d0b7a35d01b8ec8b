"""Common types of the readers and writers: source description, frames, and the sink interface."""

from __future__ import annotations

import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

import numpy as np

from satvsr_cli.options import InputType

if TYPE_CHECKING:
    from satvsr_cli.io.geotiff import GeoMeta

#: Suffixes of still-image frames (PNG, TIFF, JPEG, BMP).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

SourceKind = Literal["video", "frames", "geotiff"]
INPUT_TYPES: tuple[str, ...] = tuple(InputType)


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class SourceInfo:
    """What a frame source holds; everything ``satvsr probe`` reports about the input."""

    kind: SourceKind
    spec: str
    width: int
    height: int
    bands: int
    dtype: str
    n_frames: int | None
    n_frames_exact: bool = True
    fps: Fraction | None = None
    duration: float | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    bit_depth: int | None = None
    audio_codec: str | None = None
    rotation: int = 0
    vfr: bool = False
    frame_names: tuple[str, ...] | None = None
    frame_suffix: str | None = None
    value_range: tuple[float, float] | None = None
    geo: GeoMeta | None = None
    files: tuple[Path, ...] = ()
    identity: dict[str, Any] = field(default_factory=dict)

    def lossy_coding(self) -> str | None:
        """What lossy coding the input went through (``"h264 video"``, ``"JPEG frames"``), or
        ``None`` for lossless input (PNG/TIFF frames, GeoTIFF, FFV1 or raw video...)."""
        if self.kind == "video":
            codec = (self.codec or "").lower()
            return None if codec in LOSSLESS_VIDEO_CODECS else f"{codec or 'unknown-codec'} video"
        if (self.frame_suffix or "").lower() in (".jpg", ".jpeg"):
            return "JPEG frames"
        return None

    def name_of(self, index: int) -> str:
        """The output file stem of frame ``index``: the source name, or a 6-digit number."""
        if self.frame_names is not None and index < len(self.frame_names):
            return self.frame_names[index]
        return f"{index:06d}"


#: ffmpeg names of video codecs that keep every pixel (the rest are treated as lossy).
LOSSLESS_VIDEO_CODECS = frozenset({
    "ffv1", "rawvideo", "png", "apng", "huffyuv", "ffvhuff", "utvideo", "qtrle", "tiff", "bmp",
    "v210", "v410", "r210", "magicyuv", "lagarith", "zlib", "gif",
})


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: ``data`` (H, W, C) in the native dtype; ``valid`` (H, W) or ``None``."""

    index: int
    data: np.ndarray
    valid: np.ndarray | None


class FrameSource(ABC):
    """A sequential reader of frames."""

    info: SourceInfo

    @abstractmethod
    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Yield frames ``start, start+1, …`` until the end; raises InputError on bad data."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release files and subprocesses."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RowWriter(Protocol):
    """Takes the finished rows of one x4 frame in order, so that the full frame is never held.

    The engine (:meth:`satvsr_cli.engine.infer.WindowUpscaler.upscale_many`) calls
    :meth:`write_rows` and, after an out-of-memory retry, :meth:`reset`; the job then hands the
    writer back to its sink (:meth:`FrameSink.close_rows`, which calls :meth:`close`) or, on an
    error, calls :meth:`abort`.
    """

    def write_rows(self, y0: int, rows: np.ndarray, valid: np.ndarray | None) -> None:
        """Rows ``y0 .. y0 + n`` as ``(C, n, sW)`` in the output dtype; ``valid`` ``(n, sW)``."""

    def reset(self) -> None:
        """Forget every row written so far (the frame is computed again)."""

    def close(self) -> Path:
        """Finish the frame (every row written) and move it into place; returns its path."""

    def abort(self) -> None:
        """Drop the frame: remove whatever was written of it."""


class FrameSink(ABC):
    """A writer of output frames into a temporary location, made final by :meth:`commit`.

    Frames arrive in increasing index order. ``done()`` lists frames already complete from an
    earlier run (verified), which the engine skips. :meth:`abort` removes every temporary file.
    """

    path: Path
    #: :meth:`write` may run on a writer thread, one frame at a time, while the engine computes
    #: the next one (sinks that encode in this process and verify their files on resume; the
    #: engine touches the sink again only after the write has finished)
    threaded_writes: bool = False

    @abstractmethod
    def done(self) -> set[int]:
        """Frame indices whose output is already complete and verified (resume)."""

    @abstractmethod
    def write(self, index: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Write the x4 frame ``index``: ``data`` (sH, sW, C) native dtype."""

    def open_rows(self, index: int, has_invalid: bool) -> RowWriter | None:
        """A row writer for frame ``index`` (streamed output), or ``None`` when the sink takes
        whole frames only (the default)."""
        return None

    def close_rows(self, index: int, rows: RowWriter) -> None:
        """Finish a frame written through :meth:`open_rows`."""
        rows.close()

    def flush(self) -> None:  # noqa: B027  (optional hook)
        """Finish every frame written so far (video: close the open segment); called before
        the job records the state ``committing``."""

    def discard_pending(self) -> None:  # noqa: B027  (optional hook)
        """Drop frames written but not yet final (Ctrl-C in the middle of a video segment)."""

    def seal(self) -> None:  # noqa: B027  (optional hook)
        """Finish every frame written so far without committing (a rank's part of a
        distributed job: its files are joined by rank 0)."""

    @abstractmethod
    def commit(self) -> Path:
        """Finish the output and move it to its final path."""

    @abstractmethod
    def abort(self) -> None:
        """Remove every temporary file of this output (the final path is never touched)."""

    def state(self) -> dict[str, Any]:
        """Extra resume state to keep in the job manifest."""
        return {}


class FolderSink(FrameSink):
    """A sink that writes its files into ``self.workdir`` (``OUT.partial/``) and renames it to
    ``self.path`` (``OUT/``) on :meth:`commit`; subclasses set both attributes."""

    path: Path
    workdir: Path

    def commit(self) -> Path:
        """Rename ``OUT.partial/`` to ``OUT/``."""
        atomic_replace(self.workdir, self.path)
        return self.path

    def abort(self) -> None:
        """Remove ``OUT.partial/``."""
        remove_path(self.workdir)


def partial_path(path: Path) -> Path:
    """The temporary name of ``path`` while it is being written: ``NAME.partial`` beside it."""
    return path.with_name(path.name + ".partial")


def atomic_replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final`` (a file or a folder) atomically where the OS allows it."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)


def remove_path(path: Path) -> None:
    """Remove a file or folder if present (no error when missing)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def file_identity(paths: list[Path] | tuple[Path, ...]) -> dict[str, Any]:
    """A cheap identity of input files for resume checks: count, names, total size, newest mtime."""
    sizes = 0
    newest = 0
    names = []
    for p in paths:
        st = p.stat()
        sizes += st.st_size
        newest = max(newest, st.st_mtime_ns)
        names.append(p.name)
    import hashlib

    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    return {"files": len(paths), "bytes": sizes, "mtime_ns": newest, "names_sha": digest}
