"""The typed settings and results of ``satvsr upscale`` (plain dataclasses; no torch).

:class:`UpscaleConfig` has five sections: :class:`InputOptions`, :class:`ModelOptions`,
:class:`ComputeOptions`, :class:`OutputOptions` (with the writers' :class:`VideoOptions` and
:class:`RasterOptions`) and :class:`RunOptions`. The choices are the enums of
:mod:`satvsr_cli.options`; a plain string is converted (and checked) when a section is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from satvsr_cli.errors import OptionError
from satvsr_cli.io.options import RasterOptions, VideoOptions
from satvsr_cli.options import (
    Backend,
    Blend,
    ExistingOutput,
    InputType,
    Precision,
    TemporalPadding,
    choice,
)

TileSpec = int | tuple[int, int] | None
PROGRESS_EVENTS = ("start", "tile", "frame", "warning", "done")


def _coerce(obj: Any, **enums: type[StrEnum]) -> None:
    """Convert the named string fields of a frozen dataclass to their enum (checked once here)."""
    for name, cls in enums.items():
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, choice(cls, value))


@dataclass(frozen=True)
class InputOptions:
    """What to read.

    Attributes:
        path: a video file, a folder or glob of frames or GeoTIFFs, or one GeoTIFF.
        type: ``auto`` (detected from the path), ``video``, ``frames`` or ``geotiff``.
        start, end: the output frame range ``[start, end)`` (0-based); context frames outside
            it are still read.
        value_range: ``(lo, hi)`` mapped to [0, 1]; ``None`` uses metadata or the integer range.
        bands: 1-based bands the network sees (1 or 3 values); others are bicubic.
        bands_per_frame: split one multi-band GeoTIFF into frames of this many bands.
        autorotate: deliver rotated videos upright (ffmpeg's display matrix).
        window: ``(x, y, w, h)`` in LR pixels: upscale only this part of every frame (GDAL's
            ``-srcwin``; GeoTIFF georeferencing follows); ``None``: whole frames.
        independent: upscale every frame alone (its temporal window filled with the frame
            itself), for folders of unrelated images.
    """

    path: str
    type: InputType = InputType.auto
    start: int = 0
    end: int | None = None
    value_range: tuple[float, float] | None = None
    bands: tuple[int, ...] | None = None
    bands_per_frame: int | None = None
    autorotate: bool = True
    window: tuple[int, int, int, int] | None = None
    independent: bool = False

    def __post_init__(self) -> None:
        _coerce(self, type=InputType)


@dataclass(frozen=True)
class ModelOptions:
    """Which network (see :func:`satvsr_cli.weights.resolve_model`).

    Attributes:
        name: a registry name (uses its shipped weights); ``None``: the default weights.
        weights: a ``.safetensors`` file with its manifest (wins over ``name``).
        allow_random: build an untrained network when no weights exist (testing only).
        seed: seed of that random initialisation.
    """

    name: str | None = None
    weights: str | None = None
    allow_random: bool = False
    seed: int = 0


@dataclass(frozen=True)
class ComputeOptions:
    """How to run the network.

    Attributes:
        device, precision: ``auto``/``cpu``/``cuda[:N]``/``mps`` and a :class:`Precision`.
        tile: tile size in LR pixels (int or ``(h, w)``); ``None`` chooses it from available
            memory; ``0`` processes whole frames.
        tile_overlap: overlap of neighbouring tiles in LR pixels; ``None``: the network's (32,
            48 for lgtd_base), but at most a quarter of the tile.
        blend: seam blending (:class:`Blend`).
        batch: tiles per network call; ``None`` chooses.
        feature_cache: share per-frame features between the windows (identical output).
        max_memory: memory budget in bytes for tiles and the feature cache; ``None``: half of
            what is available (RAM, or free GPU memory).
        temporal_padding: :class:`TemporalPadding` at the clip ends (``centre``: the papers').
        backend: :class:`Backend` (``auto``: OpenVINO on CPU when installed and the network
            converts, else torch; see :mod:`satvsr_cli.engine.backend`).
        threads: CPU threads; ``None``: ``$SATVSR_THREADS``, else one per physical core.
    """

    device: str = "auto"
    precision: Precision = Precision.auto
    tile: TileSpec = None
    tile_overlap: int | None = None
    blend: Blend = Blend.cosine
    batch: int | None = None
    feature_cache: bool = True
    max_memory: int | None = None
    temporal_padding: TemporalPadding = TemporalPadding.centre
    backend: Backend = Backend.auto
    threads: int | None = None

    def __post_init__(self) -> None:
        _coerce(self, precision=Precision, blend=Blend, temporal_padding=TemporalPadding,
                backend=Backend)
        if self.threads is not None and int(self.threads) < 1:
            raise OptionError(f"--threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class OutputOptions:
    """Where and how to write.

    Attributes:
        path: the output path; its kind follows the suffix (video suffix → video, ``.tif`` →
            one stacked GeoTIFF, anything else → a folder). ``None``: ``<input>_x4`` beside the
            input.
        video: encoder settings of a video output.
        raster: format settings of frame-folder and GeoTIFF outputs.
    """

    path: str | None = None
    video: VideoOptions = field(default_factory=VideoOptions)
    raster: RasterOptions = field(default_factory=RasterOptions)


@dataclass(frozen=True)
class RunOptions:
    """How the job treats what exists: ``existing`` refuses an existing output or unfinished
    run (the default), overwrites it, or resumes the unfinished run."""

    existing: ExistingOutput = ExistingOutput.refuse

    def __post_init__(self) -> None:
        _coerce(self, existing=ExistingOutput)


#: The flat option names (the CLI flags: ``tile_overlap`` ↔ ``--tile-overlap``) and where each
#: lives in :class:`UpscaleConfig`.
FLAGS: dict[str, tuple[str, ...]] = {
    "input": ("input", "path"),
    "input_type": ("input", "type"),
    "start": ("input", "start"),
    "end": ("input", "end"),
    "value_range": ("input", "value_range"),
    "bands": ("input", "bands"),
    "bands_per_frame": ("input", "bands_per_frame"),
    "autorotate": ("input", "autorotate"),
    "window": ("input", "window"),
    "independent": ("input", "independent"),
    "model": ("model", "name"),
    "weights": ("model", "weights"),
    "allow_random": ("model", "allow_random"),
    "seed": ("model", "seed"),
    "device": ("compute", "device"),
    "precision": ("compute", "precision"),
    "tile": ("compute", "tile"),
    "tile_overlap": ("compute", "tile_overlap"),
    "blend": ("compute", "blend"),
    "batch": ("compute", "batch"),
    "feature_cache": ("compute", "feature_cache"),
    "max_memory": ("compute", "max_memory"),
    "temporal_padding": ("compute", "temporal_padding"),
    "backend": ("compute", "backend"),
    "threads": ("compute", "threads"),
    "output": ("output", "path"),
    "fps": ("output", "video", "fps"),
    "codec": ("output", "video", "codec"),
    "crf": ("output", "video", "crf"),
    "preset": ("output", "video", "preset"),
    "pix_fmt": ("output", "video", "pix_fmt"),
    "encoder_opts": ("output", "video", "encoder_opts"),
    "audio": ("output", "video", "audio"),
    "segment_frames": ("output", "video", "segment_frames"),
    "frame_format": ("output", "raster", "frame_format"),
    "compress": ("output", "raster", "compress"),
    "cog": ("output", "raster", "cog"),
    "overviews": ("output", "raster", "overviews"),
    "existing": ("run", "existing"),
}


@dataclass(frozen=True)
class UpscaleConfig:
    """Every option of an upscale job, in sections (like train's ``RunConfig``).

    Build one from sections, or from the flat CLI names with :meth:`from_flags`
    (``UpscaleConfig.from_flags(input="clip.mp4", tile=256, resume=True)``).
    """

    input: InputOptions
    model: ModelOptions = field(default_factory=ModelOptions)
    compute: ComputeOptions = field(default_factory=ComputeOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    run: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def from_flags(cls, **flags: Any) -> UpscaleConfig:
        """A config from flat option names (see :data:`FLAGS`). ``overwrite=True`` and
        ``resume=True`` are the two non-default :class:`ExistingOutput` policies."""
        flags = dict(flags)
        overwrite = bool(flags.pop("overwrite", False))
        resume = bool(flags.pop("resume", False))
        if overwrite and resume:
            raise OptionError("--overwrite and --resume exclude each other; choose one")
        if overwrite or resume:
            flags["existing"] = ExistingOutput.overwrite if overwrite else ExistingOutput.resume
        unknown = sorted(set(flags) - set(FLAGS))
        if unknown:
            raise TypeError(f"unknown upscale option(s): {', '.join(unknown)}")
        if "input" not in flags:
            raise TypeError("from_flags() needs input=")
        groups: dict[str, dict[str, Any]] = {"input": {}, "model": {}, "compute": {},
                                             "output": {}, "run": {}, "video": {}, "raster": {}}
        for key, value in flags.items():
            where = FLAGS[key]
            groups[where[1] if len(where) == 3 else where[0]][where[-1]] = value
        return cls(
            input=InputOptions(**groups["input"]),
            model=ModelOptions(**groups["model"]),
            compute=ComputeOptions(**groups["compute"]),
            output=OutputOptions(**groups["output"], video=VideoOptions(**groups["video"]),
                                 raster=RasterOptions(**groups["raster"])),
            run=RunOptions(**groups["run"]),
        )

    def flags(self) -> dict[str, Any]:
        """The flat option names and their values (the inverse of :meth:`from_flags`)."""
        out: dict[str, Any] = {}
        for key, where in FLAGS.items():
            obj: Any = self
            for part in where:
                obj = getattr(obj, part)
            out[key] = obj
        return out

    def replace(self, **changes: Any) -> UpscaleConfig:
        """A copy with ``changes`` (flat option names, as in :meth:`from_flags`) applied."""
        flags = self.flags()
        if "overwrite" in changes or "resume" in changes:
            flags.pop("existing")
        flags.update(changes)
        return UpscaleConfig.from_flags(**flags)

    @property
    def existing(self) -> ExistingOutput:
        """The existing-output policy (``run.existing``)."""
        return self.run.existing


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report. ``event``: ``start``, ``tile`` (tiles finished within the frames
    being computed: ``tiles_done`` of ``tiles_total``; only when a frame takes several network
    calls), ``frame``, ``warning`` or ``done``."""

    event: Literal["start", "tile", "frame", "warning", "done"]
    done: int = 0
    total: int | None = None
    total_exact: bool = True
    elapsed_s: float = 0.0
    fps: float | None = None
    eta_s: float | None = None
    frame: int | None = None
    message: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: the torchrun rank that reports (``None`` in a single process)
    rank: int | None = None
    tiles_done: int | None = None
    tiles_total: int | None = None

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
    already_complete: bool = False
    #: the backend that ran (``torch``, ``openvino 2026.4 fp32``), CPU threads, and why the
    #: precision was chosen (issue 11)
    backend: str = "torch"
    threads: int | None = None
    precision_reason: str = ""
    #: why these weights when the default was chosen for the input (issue 9), else ""
    weights_choice: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["output"] = str(self.output)
        d["tile"] = list(self.tile)
        return d
