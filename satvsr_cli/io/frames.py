"""Folders (or globs) of image frames: PNG/TIFF/JPEG/BMP, 8- or 16-bit or float, in natural order.

Images are read and written with rasterio (GDAL's PNG and GTiff drivers) because Pillow reads
16-bit colour PNGs as 8-bit. A palette image is expanded to RGB through its colour table. All
frames must share one size, band count and dtype (checked from the headers before any work).
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.fsutil import write_failure
from satvsr_cli.io.base import (
    IMAGE_SUFFIXES,
    FolderSink,
    Frame,
    FrameSource,
    SourceInfo,
    file_identity,
    natural_key,
    partial_path,
    remove_path,
)
from satvsr_cli.options import FrameFormat, choice

FRAME_FORMATS: tuple[str, ...] = tuple(FrameFormat)
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _env() -> Any:
    import rasterio

    return rasterio.Env(GDAL_PAM_ENABLED="NO", CPL_LOG="/dev/null" if os.name != "nt" else "NUL")


def is_glob(spec: str) -> bool:
    """True when ``spec`` contains glob wildcards."""
    return any(ch in spec for ch in "*?[")


def list_frame_files(spec: str | Path) -> list[Path]:
    """Image files of a folder, a glob or a single image, in natural order of their names."""
    text = str(spec)
    if is_glob(text):
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        p = Path(text)
        if p.is_dir():
            files = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file():
            files = [p]
        else:
            raise InputError(f"{p}: no such file or folder")
    return sorted(files, key=lambda q: natural_key(q.name))


def _png_complete(path: Path) -> bool:
    """True when a PNG file ends with its IEND chunk (GDAL reads truncated PNGs silently)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - len(_PNG_IEND)))
            return f.read() == _PNG_IEND
    except OSError:
        return False


def _check_png(path: Path) -> None:
    if path.suffix.lower() == ".png" and not _png_complete(path):
        raise InputError(f"{path}: truncated or damaged PNG (no IEND chunk at the end)")


def _header(path: Path) -> tuple[int, int, int, str, bool]:
    """(width, height, bands, dtype, palette) of an image file."""
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    _check_png(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with _env(), rasterio.open(path) as ds:
                palette = ds.count == 1 and ds.colorinterp[0] == ColorInterp.palette
                return ds.width, ds.height, (3 if palette else ds.count), ds.dtypes[0], palette
    except RasterioIOError as exc:
        raise InputError(f"{path}: unreadable image ({str(exc).splitlines()[0]})") from None


def read_image(path: Path) -> np.ndarray:
    """One image as ``(H, W, C)`` in its native dtype (palette images expanded to RGB)."""
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    _check_png(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with _env(), rasterio.open(path) as ds:
                data = ds.read()
                if ds.count == 1 and ds.colorinterp[0] == ColorInterp.palette:
                    cmap = ds.colormap(1)
                    lut = np.zeros((256, 3), dtype=np.uint8)
                    for k, rgba in cmap.items():
                        if 0 <= k < 256:
                            lut[k] = rgba[:3]
                    return lut[data[0]]
    except RasterioIOError as exc:
        raise InputError(f"{path}: unreadable image ({str(exc).splitlines()[0]})") from None
    return np.ascontiguousarray(data.transpose(1, 2, 0))


def read_rgb(path: Path, dtypes: tuple[str, ...] = ("uint8", "uint16")) -> np.ndarray:
    """One frame as ``(H, W, 3)`` in its native dtype, read like :func:`read_image`: grey (and
    grey + alpha) replicated to RGB, an alpha channel dropped.

    The one frame reader of the project: upscaling (:class:`FramesSource`), scoring
    (:mod:`satvsr_cli.eval`) and training (:mod:`satvsr_cli.train.data`) decode images the
    same way.

    Raises:
        InputError: unreadable file, a dtype outside ``dtypes``, or an unusable band count.
    """
    img = read_image(path)
    if str(img.dtype) not in dtypes:
        raise InputError(
            f"{path}: unsupported pixel type {img.dtype} ({' or '.join(dtypes)} expected)"
        )
    bands = img.shape[2]
    if bands in (1, 2):
        img = np.repeat(img[..., :1], 3, axis=2)
    elif bands == 4:
        img = img[..., :3]
    elif bands != 3:
        raise InputError(f"{path}: expected an RGB image, got {bands} bands")
    return np.ascontiguousarray(img)


def probe_frames(spec: str | Path) -> SourceInfo:
    """Describe a frame folder or glob; every header is checked for one common size and dtype."""
    files = list_frame_files(spec)
    if not files:
        raise InputError(f"{spec}: no image frames found ({', '.join(IMAGE_SUFFIXES)})")
    w, h, c, dt, _ = _header(files[0])
    for p in files[1:]:
        w2, h2, c2, dt2, _ = _header(p)
        if (w2, h2, c2, dt2) != (w, h, c, dt):
            raise InputError(
                f"{p}: {w2}x{h2}, {c2} band(s) {dt2} differs from {files[0].name} "
                f"({w}x{h}, {c} band(s) {dt}); all frames must match"
            )
    return SourceInfo(
        kind="frames",
        spec=str(spec),
        width=w,
        height=h,
        bands=c,
        dtype=dt,
        n_frames=len(files),
        frame_names=tuple(p.stem for p in files),
        frame_suffix=files[0].suffix.lower(),
        bit_depth=np.dtype(dt).itemsize * 8,
        files=tuple(files),
        identity={"spec": str(spec), **file_identity(files)},
    )


class FramesSource(FrameSource):
    """Reads a folder or glob of frames one by one."""

    def __init__(self, spec: str | Path, info: SourceInfo | None = None) -> None:
        """Probe ``spec`` unless ``info`` is given."""
        self.info = info or probe_frames(spec)

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Frames from ``start`` on; a frame that changed since probing raises InputError."""
        info = self.info
        for i, path in enumerate(info.files):
            if i < start:
                continue
            data = read_image(path)
            if data.shape != (info.height, info.width, info.bands) or str(data.dtype) != info.dtype:
                raise InputError(f"{path}: frame does not match the others (changed while reading?)")
            yield Frame(i, data, None)


def frame_format_for(
    dtype: str, requested: str | None, source_suffix: str | None
) -> FrameFormat:
    """``png`` or ``tif`` for an output frame folder (floats and >16-bit need TIFF)."""
    dt = np.dtype(dtype)
    png_ok = dt in (np.dtype("uint8"), np.dtype("uint16"))
    if requested is not None:
        fmt = choice(FrameFormat, requested, error=OutputError)
        if fmt == FrameFormat.png and not png_ok:
            raise OutputError(f"PNG cannot hold {dtype} pixels; use --frame-format tif")
        return fmt
    if source_suffix in (".tif", ".tiff") or not png_ok:
        return FrameFormat.tif
    return FrameFormat.png


def write_image(path: Path, data: np.ndarray, fmt: str) -> None:
    """Write ``(H, W, C)`` ``data`` as PNG or DEFLATE-compressed TIFF (tiled when large)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    h, w, c = data.shape
    if fmt == "png":
        profile: dict[str, Any] = {"driver": "PNG", "zlevel": 6}
    else:
        profile = {"driver": "GTiff", "compress": "deflate",
                   "predictor": 3 if data.dtype.kind == "f" else 2}
        if h >= 512 and w >= 512:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        if c > 1:
            profile["interleave"] = "pixel"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with _env(), rasterio.open(
            path, "w", width=w, height=h, count=c, dtype=data.dtype, **profile
        ) as ds:
            ds.write(data.transpose(2, 0, 1))


def verify_image(path: Path, width: int, height: int, bands: int, dtype: str) -> bool:
    """True when ``path`` opens with the expected size/bands/dtype and is not truncated."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.windows import Window

    try:
        if path.suffix.lower() == ".png" and not _png_complete(path):
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with _env(), rasterio.open(path) as ds:
                if (ds.width, ds.height, ds.count, ds.dtypes[0]) != (width, height, bands, dtype):
                    return False
                if path.suffix.lower() != ".png":
                    ds.read(window=Window(0, height - 1, width, 1))
        return True
    except (RasterioIOError, OSError):
        return False


class FramesSink(FolderSink):
    """One image per frame into ``OUT.partial/``, renamed to ``OUT/`` by :meth:`commit`.

    ``name_of(i)`` gives the file stem of frame ``i`` and ``index_of(stem)`` the reverse (``None``
    for a file that is not one of this run's frames); ``wanted(i)`` says whether frame ``i`` is in
    the requested range. With ``resume``, earlier files are verified and kept, others removed.
    """

    threaded_writes = True  # PNG/TIFF encoding overlaps the network; files verified on resume

    def __init__(
        self,
        path: Path,
        *,
        name_of: Callable[[int], str],
        index_of: Callable[[str], int | None],
        wanted: Callable[[int], bool],
        width: int,
        height: int,
        bands: int,
        dtype: str,
        fmt: str,
        resume: bool = False,
    ) -> None:
        """See the class docstring."""
        self.path = path
        self.workdir = partial_path(path)
        self.name_of = name_of
        self.width, self.height, self.bands, self.dtype = width, height, bands, dtype
        self.fmt = fmt
        self.ext = ".png" if fmt == "png" else ".tif"
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.workdir}: cannot create ({exc.strerror})") from None
        self._done: set[int] = set()
        for p in list(self.workdir.iterdir()):
            idx = index_of(p.stem) if p.suffix == self.ext and not p.name.startswith(".") else None
            keep = (
                resume
                and idx is not None
                and wanted(idx)
                and verify_image(p, width, height, bands, dtype)
            )
            if keep and idx is not None:
                self._done.add(idx)
            else:
                remove_path(p)

    def file_for(self, index: int) -> Path:
        """Path (inside the work folder) of frame ``index``."""
        return self.workdir / (self.name_of(index) + self.ext)

    def done(self) -> set[int]:
        """Frames already written and verified."""
        return set(self._done)

    def write(self, index: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Write one frame to a hidden temp name, then rename it into place."""
        final = self.file_for(index)
        tmp = final.with_name(f".{final.stem}.tmp{self.ext}")
        try:
            write_image(tmp, data, self.fmt)
            if not verify_image(tmp, self.width, self.height, self.bands, self.dtype):
                # GDAL may not report a short write (disk full, file-size limit)
                raise OutputError(write_failure(final, written=tmp))
            os.replace(tmp, final)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OutputError):
                raise
            if isinstance(exc, OSError) or type(exc).__module__.startswith("rasterio"):
                raise OutputError(f"{final}: cannot write ({str(exc).splitlines()[0]})") from None
            raise
        self._done.add(index)
