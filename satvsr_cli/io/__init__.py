"""Input and output: video, frame folders and GeoTIFF stacks, detected from the path.

:func:`open_source` opens any input as a :class:`~satvsr_cli.io.base.FrameSource`;
:func:`output_kind` and :func:`default_output` decide what an output path means, and
:func:`open_sink` opens the matching :class:`~satvsr_cli.io.base.FrameSink`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.io.base import (
    INPUT_TYPES,
    Frame,
    FrameSink,
    FrameSource,
    RowWriter,
    SourceInfo,
    SourceKind,
    partial_path,
)
from satvsr_cli.io.options import RasterOptions, SinkOptions, VideoOptions
from satvsr_cli.options import InputType, OutputKind, choice

__all__ = [
    "INPUT_TYPES",
    "OUTPUT_KINDS",
    "Frame",
    "FrameSink",
    "FrameSource",
    "OutputKind",
    "RasterOptions",
    "RowWriter",
    "SinkOptions",
    "SourceInfo",
    "SourceKind",
    "VideoOptions",
    "default_output",
    "detect_input_type",
    "open_sink",
    "open_source",
    "output_kind",
    "partial_path",
]

#: ``video``: a video file; ``frames``: a folder of images; ``geotiff-frames``: a folder of
#: GeoTIFFs (one per frame); ``geotiff-stack``: one stacked GeoTIFF.
OUTPUT_KINDS: tuple[str, ...] = tuple(OutputKind)
_TIF = (".tif", ".tiff")


def detect_input_type(spec: str, input_type: str | InputType = InputType.auto) -> SourceKind:
    """``video``, ``frames`` or ``geotiff`` for an input path/glob (``input_type`` overrides).

    Raises:
        InputError: the path does not exist or holds nothing readable.
    """
    from satvsr_cli.io.frames import is_glob, list_frame_files
    from satvsr_cli.io.geotiff import is_geotiff
    from satvsr_cli.io.video import VIDEO_SUFFIXES

    input_type = choice(InputType, input_type)
    if input_type != InputType.auto:
        return input_type.value  # type: ignore[return-value]
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
    spec: str | Path,
    input_type: str | InputType = InputType.auto,
    *,
    bands_per_frame: int | None = None,
    autorotate: bool = True,
    window: tuple[int, int, int, int] | None = None,
) -> FrameSource:
    """Open ``spec`` (a path, or a glob pattern as text) as a frame source of the detected (or
    given) type; ``window`` (X, Y, W, H in pixels) crops every frame
    (:class:`satvsr_cli.io.window.WindowSource`)."""
    spec = str(spec)
    kind = detect_input_type(spec, input_type)
    if bands_per_frame is not None and kind != "geotiff":
        raise InputError("--bands-per-frame applies to GeoTIFF input only")
    source: FrameSource
    if kind == "video":
        from satvsr_cli.io.video import VideoSource

        source = VideoSource(Path(spec), autorotate=autorotate)
    elif kind == "frames":
        from satvsr_cli.io.frames import FramesSource

        source = FramesSource(spec)
    else:
        from satvsr_cli.io.geoframes import GeoTiffSource

        source = GeoTiffSource(spec, bands_per_frame=bands_per_frame)
    if window is None:
        return source
    from satvsr_cli.io.window import WindowSource

    try:
        return WindowSource(source, window)
    except BaseException:
        source.close()
        raise


def output_kind(path: Path, info: SourceInfo) -> OutputKind:
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
        return OutputKind.geotiff_stack
    if suffix in VIDEO_OUTPUT_SUFFIXES:
        return OutputKind.video
    if suffix in VIDEO_SUFFIXES:
        raise OutputError(
            f"{path}: cannot write {suffix} video; use one of {', '.join(VIDEO_OUTPUT_SUFFIXES)}"
        )
    return OutputKind.geotiff_frames if info.kind == "geotiff" else OutputKind.frames


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


def open_sink(
    kind: OutputKind | str, path: Path, info: SourceInfo, options: SinkOptions
) -> FrameSink:
    """The writer of ``kind`` (see :func:`output_kind`) for x4 frames of ``info``, mirroring
    :func:`open_source`.

    Raises:
        OutputError: the output cannot hold these frames (e.g. a 4-band video, a GeoTIFF from
            non-GeoTIFF input), or cannot be prepared.
    """
    kind = choice(OutputKind, kind)
    scale = 4
    resume = options.resume_state is not None
    width, height = info.width * scale, info.height * scale
    start, end = options.start, options.end
    if kind == OutputKind.video:
        from satvsr_cli.io.video import VideoSink

        video = options.video
        fps = options.fps or video.fps or info.fps or Fraction(25)
        audio_codec = info.audio_codec if (video.audio and info.kind == "video") else None
        return VideoSink(
            path, width=width, height=height, channels=info.bands, dtype=info.dtype, fps=fps,
            first_index=start, codec=video.codec or "libx264", crf=video.crf, preset=video.preset,
            pix_fmt=video.pix_fmt, encoder_opts=video.encoder_opts,
            segment_frames=video.segment_frames,
            audio_source=Path(info.spec) if audio_codec else None, audio_codec=audio_codec,
            audio_offset=Fraction(start) / (info.fps or fps),
            resume_state=options.resume_state or {},
        )
    raster = options.raster
    if kind == OutputKind.frames:
        from satvsr_cli.io.frames import FramesSink, frame_format_for

        fmt = frame_format_for(info.dtype, raster.frame_format, info.frame_suffix)
        names = info.frame_names
        lookup = {n: i for i, n in enumerate(names)} if names is not None else None

        def index_of(stem: str) -> int | None:
            if lookup is not None:
                return lookup.get(stem)
            return int(stem) if stem.isdigit() else None

        return FramesSink(
            path, name_of=info.name_of, index_of=index_of,
            wanted=lambda i: i >= start and (end is None or i < end),
            width=width, height=height, bands=info.bands, dtype=info.dtype, fmt=fmt,
            resume=resume,
        )
    from satvsr_cli.io.geoframes import GeoFramesSink, GeoStackSink

    if info.geo is None or end is None:
        raise OutputError(f"{path}: GeoTIFF output needs GeoTIFF input")
    geo_names = [info.name_of(i) for i in range(start, end)]
    cls = GeoStackSink if kind == OutputKind.geotiff_stack else GeoFramesSink
    return cls(
        path, info.geo, names=geo_names, first_index=start, compress=raster.compress,
        cog=raster.cog, overviews=raster.overviews, tags=dict(options.tags),
        band_descriptions=options.band_descriptions, resume=resume,
    )
