"""The writers' settings: what :func:`satvsr_cli.io.open_sink` needs besides the path and the
source (plain dataclasses; importing this is cheap)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from satvsr_cli.options import Compression, FrameFormat, choice


@dataclass(frozen=True)
class VideoOptions:
    """Video output.

    Attributes:
        fps: output frame rate (``None``: the source's exact rate, 25 when it has none).
        codec, crf, preset, pix_fmt, encoder_opts: the ffmpeg encoder and its settings
            (``codec`` ``None``: libx264, or libx265 for frames beyond H.264's limits;
            ``pix_fmt`` ``None``: the chroma subsampling of a video source, else yuv420p;
            10-bit for >8-bit input; see :mod:`satvsr_cli.io.video.limits`).
        audio: copy the source's audio.
        segment_frames: frames per independently encoded segment (the unit of resume).
    """

    fps: Fraction | None = None
    codec: str | None = None
    crf: int | None = 18
    preset: str | None = None
    pix_fmt: str | None = None
    encoder_opts: tuple[str, ...] = ()
    audio: bool = True
    segment_frames: int = 100


@dataclass(frozen=True)
class RasterOptions:
    """Frame-folder and GeoTIFF output.

    Attributes:
        frame_format: ``png`` or ``tif`` for frame folders (``None``: like the input).
        compress, cog, overviews: GeoTIFF compression, Cloud Optimized GeoTIFF, overviews.
    """

    frame_format: FrameFormat | None = None
    compress: Compression = Compression.deflate
    cog: bool = False
    overviews: bool = False

    def __post_init__(self) -> None:
        if self.frame_format is not None:
            object.__setattr__(self, "frame_format", choice(FrameFormat, self.frame_format))
        object.__setattr__(self, "compress", choice(Compression, self.compress))


@dataclass(frozen=True)
class SinkOptions:
    """Everything a writer needs besides the output path and the source description.

    Attributes:
        start, end: the output frame range ``[start, end)`` (``end`` resolved; ``None`` only
            for a video of unknown length).
        video, raster: the output settings.
        fps: the resolved output frame rate of a video.
        tags: provenance tags written into GeoTIFF outputs.
        band_descriptions: GeoTIFF band descriptions (``None``: the source's).
        resume_state: the sink state saved by an interrupted run, ``None`` for a fresh start.
    """

    start: int = 0
    end: int | None = None
    video: VideoOptions = field(default_factory=VideoOptions)
    raster: RasterOptions = field(default_factory=RasterOptions)
    fps: Fraction | None = None
    tags: dict[str, str] = field(default_factory=dict)
    band_descriptions: tuple[str | None, ...] | None = None
    resume_state: dict[str, Any] | None = None
