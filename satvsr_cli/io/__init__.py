"""Input and output: video, frame folders and GeoTIFF stacks, detected from the path.

:func:`open_source` opens any input as a :class:`~satvsr_cli.io.base.FrameSource`;
:func:`output_kind` and :func:`default_output` decide what an output path means.
"""

from __future__ import annotations

from pathlib import Path

from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.io.base import (
    INPUT_TYPES,
    Frame,
    FrameSink,
    FrameSource,
    SourceInfo,
    SourceKind,
    partial_path,
)

__all__ = [
    "INPUT_TYPES",
    "OUTPUT_KINDS",
    "Frame",
    "FrameSink",
    "FrameSource",
    "SourceInfo",
    "SourceKind",
    "default_output",
    "detect_input_type",
    "open_source",
    "output_kind",
    "partial_path",
]

#: ``video``: a video file; ``frames``: a folder of images; ``geotiff-frames``: a folder of
#: GeoTIFFs (one per frame); ``geotiff-stack``: one stacked GeoTIFF.
OUTPUT_KINDS = ("video", "frames", "geotiff-frames", "geotiff-stack")
_TIF = (".tif", ".tiff")


def detect_input_type(spec: str, input_type: str = "auto") -> SourceKind:
    """``video``, ``frames`` or ``geotiff`` for an input path/glob (``input_type`` overrides).

    Raises:
        InputError: the path does not exist or holds nothing readable.
    """
    from satvsr_cli.io.frames import is_glob, list_frame_files
    from satvsr_cli.io.geotiff import is_geotiff
    from satvsr_cli.io.video import VIDEO_SUFFIXES

    if input_type not in INPUT_TYPES:
        raise InputError(f"unknown --input-type {input_type!r}; use one of {', '.join(INPUT_TYPES)}")
    if input_type != "auto":
        return input_type  # type: ignore[return-value]
    path = Path(spec)
    if not is_glob(spec) and not path.exists():
        raise InputError(f"{spec}: no such file or folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _TIF:
            return "geotiff" if is_geotiff(path) else "frames"
        if suffix in VIDEO_SUFFIXES:
            return "video"
        if suffix in (".png", ".jpg", ".jpeg", ".bmp"):
            return "frames"
        return "video"  # let ffmpeg try anything else
    files = list_frame_files(spec)
    if not files:
        raise InputError(f"{spec}: no frames found (PNG/TIFF/JPEG images or GeoTIFFs)")
    if all(p.suffix.lower() in _TIF for p in files) and is_geotiff(files[0]):
        return "geotiff"
    return "frames"


def open_source(
    spec: str,
    input_type: str = "auto",
    *,
    bands_per_frame: int | None = None,
    autorotate: bool = True,
) -> FrameSource:
    """Open ``spec`` as a frame source of the detected (or given) type."""
    kind = detect_input_type(spec, input_type)
    if bands_per_frame is not None and kind != "geotiff":
        raise InputError("--bands-per-frame applies to GeoTIFF input only")
    if kind == "video":
        from satvsr_cli.io.video import VideoSource

        return VideoSource(Path(spec), autorotate=autorotate)
    if kind == "frames":
        from satvsr_cli.io.frames import FramesSource

        return FramesSource(spec)
    from satvsr_cli.io.geoframes import GeoTiffSource

    return GeoTiffSource(spec, bands_per_frame=bands_per_frame)


def output_kind(path: Path, info: SourceInfo) -> str:
    """What ``path`` means as an output for ``info`` (see :data:`OUTPUT_KINDS`).

    Raises:
        OutputError: the combination is impossible (e.g. a ``.tif`` stack from a video).
    """
    from satvsr_cli.io.video import VIDEO_OUTPUT_SUFFIXES, VIDEO_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in _TIF:
        if info.kind != "geotiff":
            raise OutputError(
                f"{path}: a .tif output is a stacked GeoTIFF and needs GeoTIFF input; "
                "give a folder to write one image per frame"
            )
        return "geotiff-stack"
    if suffix in VIDEO_OUTPUT_SUFFIXES:
        return "video"
    if suffix in VIDEO_SUFFIXES:
        raise OutputError(
            f"{path}: cannot write {suffix} video; use one of {', '.join(VIDEO_OUTPUT_SUFFIXES)}"
        )
    return "geotiff-frames" if info.kind == "geotiff" else "frames"


def default_output(info: SourceInfo) -> Path:
    """``<input>_x4`` beside the input: same video suffix (mp4 otherwise), a folder, or a .tif."""
    from satvsr_cli.io.frames import is_glob
    from satvsr_cli.io.video import VIDEO_OUTPUT_SUFFIXES

    spec = info.spec.rstrip("/")
    if is_glob(spec):
        base = Path(spec).parent
        return base.with_name(base.name + "_x4")
    p = Path(spec)
    if info.kind == "video":
        suffix = p.suffix.lower() if p.suffix.lower() in VIDEO_OUTPUT_SUFFIXES else ".mp4"
        return p.with_name(p.stem + "_x4" + suffix)
    if p.is_file():
        if info.kind == "geotiff":
            return p.with_name(p.stem + "_x4.tif")
        return p.with_name(p.stem + "_x4")
    return p.with_name(p.name + "_x4")
