"""The typed settings and results of ``satvsr upscale`` (plain dataclasses; importing this is cheap)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

TileSpec = int | tuple[int, int] | None
BLENDS = ("cosine", "linear", "none")
COMPRESSIONS = ("deflate", "zstd", "lzw", "none")
PROGRESS_EVENTS = ("start", "frame", "warning", "done")


@dataclass(frozen=True)
class UpscaleConfig:
    """Every option of an upscale job. Field names match the CLI flags (``tile_overlap`` ↔
    ``--tile-overlap``).

    Attributes:
        input: a video file, a folder or glob of frames or GeoTIFFs, or one GeoTIFF.
        output: the output path; its kind follows the suffix (video suffix → video, ``.tif`` →
            one stacked GeoTIFF, anything else → a folder). ``None``: ``<input>_x4`` beside the input.
        input_type: ``auto`` (detected from the path), ``video``, ``frames`` or ``geotiff``.
        model, weights, allow_random: which network (see :func:`satvsr_cli.weights.resolve_model`).
        start, end: the output frame range ``[start, end)`` (0-based); context frames outside
            it are still read.
        temporal_padding: ``centre`` (the papers' protocol), ``reflect`` or ``replicate``.
        tile: tile size in LR pixels (int or ``(h, w)``); ``None`` chooses it from available
            memory; ``0`` processes whole frames.
        tile_overlap: overlap of neighbouring tiles in LR pixels; ``None``: 32, but at most a
            quarter of the tile.
        blend: seam blending, ``cosine``, ``linear`` or ``none``.
        batch: tiles per network call; ``None`` chooses.
        feature_cache: share per-frame features between the windows (identical output).
        max_memory: memory budget in bytes for tiles and the feature cache; ``None``: half of
            what is available (RAM, or free GPU memory).
        device, precision: ``auto``/``cpu``/``cuda[:N]``/``mps`` and ``auto``/``fp32``/``bf16``/``fp16``.
        value_range: ``(lo, hi)`` mapped to [0, 1]; ``None`` uses metadata or the integer range.
        bands: 1-based bands the network sees (1 or 3 values); others are bicubic.
        bands_per_frame: split one multi-band GeoTIFF into frames of this many bands.
        fps: output frame rate override for video output (``None`` keeps the source rate).
        codec, crf, preset, pix_fmt, encoder_opts, audio, segment_frames: video output.
        frame_format: ``png`` or ``tif`` for frame folders (``None``: from the input).
        compress, cog, overviews: GeoTIFF output.
        autorotate: deliver rotated videos upright (ffmpeg's display matrix).
        overwrite, resume: what to do with an existing output or an unfinished earlier run.
        seed: seed of the random initialisation when ``allow_random`` builds an untrained network.
    """

    input: str
    output: str | None = None
    input_type: str = "auto"
    model: str | None = None
    weights: str | None = None
    allow_random: bool = False
    start: int = 0
    end: int | None = None
    temporal_padding: str = "centre"
    tile: TileSpec = None
    tile_overlap: int | None = None
    blend: str = "cosine"
    batch: int | None = None
    feature_cache: bool = True
    max_memory: int | None = None
    device: str = "auto"
    precision: str = "auto"
    value_range: tuple[float, float] | None = None
    bands: tuple[int, ...] | None = None
    bands_per_frame: int | None = None
    fps: Fraction | None = None
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = None
    pix_fmt: str | None = None
    encoder_opts: tuple[str, ...] = ()
    audio: bool = True
    segment_frames: int = 100
    frame_format: str | None = None
    compress: str = "deflate"
    cog: bool = False
    overviews: bool = False
    autorotate: bool = True
    overwrite: bool = False
    resume: bool = False
    seed: int = 0

    def replace(self, **changes: Any) -> UpscaleConfig:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report. ``event``: ``start``, ``frame``, ``warning`` or ``done``."""

    event: Literal["start", "frame", "warning", "done"]
    done: int = 0
    total: int | None = None
    total_exact: bool = True
    elapsed_s: float = 0.0
    fps: float | None = None
    eta_s: float | None = None
    frame: int | None = None
    message: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` fields dropped)."""
        d = dataclasses.asdict(self)
        if not d["info"]:
            d.pop("info")
        return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class UpscaleSummary:
    """What a finished upscale did."""

    output: Path
    output_kind: str
    frames_written: int
    frames_resumed: int
    frames_total: int
    wall_s: float
    fps: float
    peak_rss_bytes: int
    peak_device_bytes: int | None
    device: str
    precision: str
    model: str
    weights_sha256: str | None
    tile: tuple[int, int]
    tiles_per_frame: int
    batch: int
    oom_retries: int
    nonfinite_retries: int
    warnings: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["output"] = str(self.output)
        d["tile"] = list(self.tile)
        return d
