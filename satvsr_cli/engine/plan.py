"""Plan an upscale job before doing any work: :func:`plan_job` → :class:`JobPlan`.

Everything the job decides up front is decided here, once: the source and its description,
the output path and kind, the band plan, the value range, the device and precision, the
network (with its spec and weights manifest), the memory figures, the tile plan and what
happens to an existing output (refuse, overwrite or resume). ``satvsr upscale`` executes the
plan (:mod:`satvsr_cli.engine.run`, :mod:`satvsr_cli.engine.job`); ``satvsr probe`` reports it
(:mod:`satvsr_cli.engine.probe`, ``plan_job(build=False)``), so the two cannot disagree.

With ``build=False`` nothing is loaded or written: the network is built on the ``meta`` device
from the configuration the run would load, the output location is not checked, and problems
that the run would raise for the band plan, the value range or a video output are kept as
notes for the report instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli import __version__
from satvsr_cli.device import resolve_device, resolve_precision
from satvsr_cli.engine.backend import resolve_backend
from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.convert import (
    BandPlan,
    check_value_range,
    default_value_range,
    plan_bands,
)
from satvsr_cli.engine.manifest import (
    ResumeDecision,
    check_existing_output,
    job_params,
    resume_decision,
)
from satvsr_cli.engine.memory import Resources, choose_resources
from satvsr_cli.engine.precision import choose_precision, weights_precision
from satvsr_cli.engine.tiling import TilePlan, plan_tiles
from satvsr_cli.engine.valuerange import (
    ValueRange,
    estimate,
    needs_estimate,
    parse_tag,
    sample_indices,
)
from satvsr_cli.errors import InputError, OutputError, SatvsrError, WeightsError
from satvsr_cli.io import default_output, open_source, output_kind
from satvsr_cli.io.base import FrameSource, SourceInfo
from satvsr_cli.io.geotiff.meta import VALUE_RANGE_TAG
from satvsr_cli.io.options import VideoOptions
from satvsr_cli.io.video import check_video_output
from satvsr_cli.options import Backend, ExistingOutput, OutputKind, Precision, choice

if TYPE_CHECKING:
    import torch

    from satvsr_cli.weights import LoadedModel

HALF_WINDOW = 2
WINDOW = 5
SCALE = 4
DEFAULT_FPS = Fraction(25)

Warn = Callable[[str], None]


# ------------------------------------------------------------------------------------------
# checks and small helpers
# ------------------------------------------------------------------------------------------


def check_config(config: UpscaleConfig) -> None:
    """Reject impossible option values with one line (before anything is opened).

    The choices (blend, padding, precision, ...) were checked when the config was built.
    """
    inp, comp, video = config.input, config.compute, config.output.video
    if inp.start < 0:
        raise InputError(f"--start must be >= 0, got {inp.start}")
    if inp.end is not None and inp.end <= inp.start:
        raise InputError(f"--end ({inp.end}) must be larger than --start ({inp.start})")
    if comp.tile_overlap is not None and comp.tile_overlap < 0:
        raise InputError(f"--tile-overlap must be >= 0, got {comp.tile_overlap}")
    tile = comp.tile
    if tile is not None:
        dims = (tile, tile) if isinstance(tile, int) else tile
        if any(d < 0 for d in dims):
            raise InputError(f"--tile must be positive, got {tile}")
    if comp.batch is not None and comp.batch < 1:
        raise InputError(f"--batch must be >= 1, got {comp.batch}")
    if video.segment_frames < 1:
        raise InputError(f"--segment-frames must be >= 1, got {video.segment_frames}")
    if video.crf is not None and not 0 <= video.crf <= 63:
        raise InputError(f"--crf must be between 0 and 63, got {video.crf}")
    if video.fps is not None and video.fps <= 0:
        raise InputError(f"--fps must be positive, got {video.fps}")
    if comp.max_memory is not None and comp.max_memory <= 0:
        raise InputError("--max-memory must be positive")


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a model's state dict."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def source_name(spec: str) -> str:
    """The input as recorded in output tags: its file (or folder, or glob) name without the
    folders above it, so that outputs do not depend on where the user's files live."""
    text = str(spec).rstrip("/\\")
    return Path(text).name or text


def value_range_for(
    info: SourceInfo, override: tuple[float, float] | None, source: FrameSource | None = None
) -> ValueRange:
    """The job's per-band value range (rule in :mod:`satvsr_cli.engine.valuerange`):
    ``--value-range`` > metadata > 8-bit 0..255 > estimated from ``source``'s frames."""
    if override is not None:
        lo, hi = check_value_range(override)
        return ValueRange((lo,), (hi,), "override")
    geo = info.geo if info.kind == "geotiff" else None
    tag = geo.tags.get(VALUE_RANGE_TAG) if geo is not None else None
    parsed = parse_tag(tag, info.bands) if tag else None
    if parsed is not None:
        return parsed
    meta = geo.value_range if geo is not None else info.value_range
    if meta is not None:
        return ValueRange((float(meta[0]),), (float(meta[1]),), "metadata")
    if not needs_estimate(info.dtype):
        lo, hi = default_value_range(info.dtype)
        return ValueRange((lo,), (hi,), "dtype")
    if source is None:
        raise InputError(f"{info.spec}: {info.dtype} data needs its value range estimated "
                         "from the frames; pass --value-range LO,HI")
    return estimate(sampled_frames(source))


def sampled_frames(source: FrameSource) -> Iterator[tuple[Any, Any]]:
    """``(data, valid)`` of the frames an estimated range is computed from: up to
    :data:`~satvsr_cli.engine.valuerange.SAMPLE_FRAMES` evenly spaced frames (the first ones
    of a video, whose frames can only be decoded in order)."""
    info = source.info
    n = info.n_frames if info.kind != "video" and info.n_frames_exact else None
    for i in sample_indices(n):
        frame = next(iter(source.frames(i)), None)
        if frame is None:
            return
        yield frame.data, frame.valid


def output_path(config: UpscaleConfig, info: SourceInfo) -> Path:
    """The output path: ``--output``, else ``<input>_x4`` beside the input."""
    return Path(config.output.path) if config.output.path else default_output(info)


def resolve_video(options: VideoOptions, info: SourceInfo, out: Path, warn: Warn) -> VideoOptions:
    """The video settings with the encoder and pixel format decided: the codec that can hold
    the x4 frames (:func:`satvsr_cli.io.video.limits.choose_codec`) and, without
    ``--pix-fmt``, the source's chroma subsampling."""
    import dataclasses

    from satvsr_cli.io.video.limits import choose_codec, output_pix_fmt
    from satvsr_cli.io.video.write import default_pix_fmt

    codec, note = choose_codec(options.codec, info.width * SCALE, info.height * SCALE, out)
    if note is not None:
        warn(note)
    pix_fmt = options.pix_fmt
    if pix_fmt is None:
        depth = 16 if info.dtype == "uint16" else 8
        grey = info.bands == 1
        pix_fmt = output_pix_fmt(codec, info.bit_depth or depth, grey,
                                 info.pix_fmt if info.kind == "video" else None,
                                 default_pix_fmt(codec, depth, grey))
    return dataclasses.replace(options, codec=codec, pix_fmt=pix_fmt)


def check_output_location(out: Path, info: SourceInfo) -> None:
    """The output must not be the input, and its folder must be creatable and writable."""
    try:
        same = out.resolve() == Path(info.spec).resolve() or any(
            out.resolve() == f.resolve() for f in info.files[:1]
        )
    except OSError:
        same = False
    if same:
        raise OutputError(f"{out}: the output would overwrite the input")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: the output folder is not writable")


# ------------------------------------------------------------------------------------------
# the plan
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """Every decision of one upscale job (see the module docstring)."""

    config: UpscaleConfig
    info: SourceInfo
    output: Path
    kind: OutputKind
    start: int
    end: int | None
    bands: BandPlan | None
    value_range: ValueRange | None
    device: torch.device
    precision: Precision
    model: LoadedModel | None
    size_multiple: int
    resources: Resources
    tiles: TilePlan
    fps: Fraction | None
    built: bool
    #: the video settings with the codec and pixel format decided (video output only)
    video: VideoOptions | None = None
    resume: ResumeDecision | None = None
    params: dict[str, Any] = field(default_factory=dict)
    weights_id: str | None = None
    bands_note: str | None = None
    value_range_note: str | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: (exit code, reason) of everything that makes the plan impossible to run (``build=False``
    #: only: with ``build=True`` the first one is raised); ``probe`` exits with the first.
    problems: tuple[tuple[int, str], ...] = ()
    #: the backend ``--backend`` resolves to (``torch``/``openvino``; ``auto`` may still fall
    #: back to torch when the network does not convert) and why the precision was chosen
    backend: str = "torch"
    precision_reason: str = ""
    #: why these weights, when the default was chosen for the input (issue 9: lossy video or
    #: JPEG frames get the robust default when one is shipped); ``None`` with --model/--weights
    weights_choice: str | None = None

    @property
    def tile(self) -> tuple[int, int]:
        """The planned tile (LR px, height x width)."""
        return (self.tiles.tile_height, self.tiles.tile_width)

    @property
    def streamed(self) -> bool:
        """True when the writer takes row strips (no full x4 frame in memory): GeoTIFF outputs
        (per-frame files or a stack) whose bands all come from one network pass."""
        return (
            self.kind in (OutputKind.geotiff_frames, OutputKind.geotiff_stack)
            and self.bands is not None
            and len(self.bands.groups) == 1
            and not self.bands.bicubic
        )

    def tags(self) -> dict[str, str]:
        """The provenance tags of GeoTIFF outputs."""
        assert self.model is not None and self.bands is not None and self.value_range is not None
        sha = self.model.sha256
        comp = self.config.compute
        vr = self.value_range
        tags = {
            "SATVSR_MODEL": self.model.label,
            "SATVSR_WEIGHTS_SHA256": sha or f"(random init, state {self.weights_id})",
            "SATVSR_VERSION": __version__,
            "SATVSR_WINDOW": str(WINDOW),
            "SATVSR_TEMPORAL_PADDING": str(comp.temporal_padding),
            "SATVSR_TILE": f"{self.tiles.tile_height}x{self.tiles.tile_width}",
            "SATVSR_OVERLAP": str(self.tiles.overlap),
            "SATVSR_BLEND": str(comp.blend),
            "SATVSR_PRECISION": str(self.precision),
            "SATVSR_NORM": f"linear {vr.describe()}",
            VALUE_RANGE_TAG: vr.to_tag(),
            "SATVSR_BANDS": self.bands.describe(),
            "SATVSR_SOURCE": source_name(self.info.spec),
        }
        if self.weights_choice:
            tags["SATVSR_WEIGHTS_CHOICE"] = self.weights_choice
        if self.config.input.window is not None:
            tags["SATVSR_SOURCE_WINDOW"] = ",".join(str(v) for v in self.config.input.window)
        if self.config.input.independent:
            tags["SATVSR_INDEPENDENT"] = "each frame upscaled alone"
        if self.bands.bicubic:
            tags["SATVSR_BICUBIC_BANDS"] = ",".join(str(b + 1) for b in self.bands.bicubic)
        return tags

    def band_descriptions(self) -> tuple[str | None, ...] | None:
        """GeoTIFF band descriptions with the bicubic bands marked (``None``: the source's)."""
        meta = self.info.geo
        if meta is None or self.bands is None or not self.bands.bicubic:
            return None
        base = list(meta.band_descriptions) or [None] * meta.count
        return tuple(
            (f"{d or f'band {b + 1}'} (bicubic x4)" if b in self.bands.bicubic else d)
            for b, d in enumerate(base)
        )


def _frame_range(
    config: UpscaleConfig, info: SourceInfo, warn: Warn
) -> tuple[int, int | None]:
    start, end = config.input.start, config.input.end
    n_in = info.n_frames
    if n_in is not None and info.n_frames_exact:
        if start >= n_in:
            raise InputError(
                f"--start {start} is past the end of the input ({n_in} frame"
                f"{'s' if n_in != 1 else ''})"
            )
        if end is not None and end > n_in:
            warn(f"--end {end} is past the end of the input; stopping at frame {n_in}")
        end = n_in if end is None else min(end, n_in)
    return start, end


def _describe_model(
    config: UpscaleConfig, default: Path | None = None
) -> tuple[LoadedModel | None, list[str]]:
    """The network the run would load, built on the ``meta`` device (no tensors read)."""
    import torch

    from satvsr_cli.models import build_model, get_spec
    from satvsr_cli.weights import (
        LoadedModel,
        Manifest,
        default_weights,
        read_manifest,
        shipped_for,
    )

    m = config.model
    manifest: Manifest | None = None
    notes: list[str] = []
    if m.weights is not None:
        manifest = read_manifest(m.weights)
    elif m.name is not None:
        get_spec(m.name)
        shipped = shipped_for(m.name)
        manifest = read_manifest(shipped[0]) if shipped else None
        if manifest is None and not m.allow_random:
            notes.append(f"no shipped weights for '{m.name}'; upscale needs --weights PATH (or "
                         "--allow-random for an untrained network)")
    else:
        default = default or default_weights()
        if default is None:
            notes.append("no default weights are shipped; pass --model or --weights to upscale")
            return None, notes
        manifest = read_manifest(default)
    name = manifest.network if manifest is not None else m.name
    assert name is not None
    spec = get_spec(name)
    with torch.device("meta"):
        net = build_model(name, **(manifest.config if manifest is not None else {}))
    label = f"{name} ({manifest.path.name})" if manifest is not None else f"{name} (random init)"
    return LoadedModel(net, spec, manifest, label), notes


def _load_model(
    config: UpscaleConfig,
    device: torch.device,
    model: torch.nn.Module | None,
    model_name: str | None,
    default: Path | None = None,
) -> LoadedModel:
    """The network of the job: ``model`` as given, else via :func:`resolve_model` (``default``:
    the default weights chosen for the input)."""
    import torch

    from satvsr_cli.models.registry import get_spec, list_models
    from satvsr_cli.weights import LoadedModel, resolve_model

    if model is not None:
        spec = get_spec(model_name) if model_name in list_models() else None
        label = model_name or type(model).__name__
        loaded = LoadedModel(model, spec, None, label)
    else:
        torch.manual_seed(config.model.seed)
        loaded = resolve_model(config.model.name, config.model.weights, device,
                               allow_random=config.model.allow_random, default=default)
    net = loaded.network.eval().to(device)
    return LoadedModel(net, loaded.spec, loaded.manifest, loaded.label)


def size_multiple_of(model: LoadedModel | None) -> int:
    """The size multiple tiles are planned with: the built network's (it follows its keyword
    configuration, e.g. an LGTD HAT window of 4 gives 4 where the preset's spec says 16), else
    the spec's, else 16 when no network is known."""
    if model is None:
        return 16
    value = getattr(model.network, "size_multiple", None)
    if value:
        return int(value)
    return model.spec.size_multiple if model.spec is not None else 1


def plan_job(
    config: UpscaleConfig,
    *,
    build: bool = True,
    source: FrameSource | None = None,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    warn: Warn | None = None,
) -> JobPlan:
    """Decide everything about the job ``config`` describes (see the module docstring).

    Args:
        config: every option.
        build: load the network and apply the output rules (``upscale``); ``False``
            describes the plan without loading or touching anything (``probe``).
        source: the already opened source (``upscale`` streams from it afterwards); ``None``
            opens (and closes) it here.
        model, model_name: an already built network and its registry name (library use).
        warn: called with one-line warnings (also kept in :attr:`JobPlan.warnings`).

    Raises:
        SatvsrError: anything that makes the job impossible (one line).
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    check_config(config)
    vrange: ValueRange | None = None
    vr_note: str | None = None
    vr_exit = 0

    def _range(src: FrameSource) -> None:
        nonlocal vrange, vr_note, vr_exit
        try:
            vrange = value_range_for(src.info, config.input.value_range, src)
        except SatvsrError as exc:
            if build:
                raise
            vr_note, vr_exit = str(exc), exc.exit_code

    if source is None:
        with open_source(
            config.input.path, config.input.type, bands_per_frame=config.input.bands_per_frame,
            autorotate=config.input.autorotate, window=config.input.window,
        ) as opened:
            info = opened.info
            _range(opened)
    else:
        info = source.info
        _range(source)
    notes: list[str] = []
    problems: list[tuple[int, str]] = []
    out = output_path(config, info)
    kind = output_kind(out, info)
    start, end = _frame_range(config, info, _warn)
    if info.kind == "frames" and not config.input.independent and len(info.files) > 1:
        from satvsr_cli.engine.scenes import unrelated_warning

        scene_warning = unrelated_warning(Path(info.spec).name or info.spec, info.files)
        if scene_warning is not None:
            (_warn if build else notes.append)(scene_warning)
    if build and info.vfr:
        _warn("the video seems to have a variable frame rate; output frames keep their "
              f"order at a constant {info.fps} fps")

    bands: BandPlan | None = None
    bands_note = None
    try:
        bands = plan_bands(info.bands, config.input.bands)
    except SatvsrError as exc:
        if build:
            raise
        bands_note = str(exc)
        problems.append((exc.exit_code, bands_note))
    if vr_note is not None:
        problems.append((vr_exit, vr_note))

    fps: Fraction | None = None
    video: VideoOptions | None = None
    if kind == OutputKind.video:
        try:
            check_video_output(out, info.bands, info.dtype)
            video = resolve_video(config.output.video, info, out, _warn if build else notes.append)
        except SatvsrError as exc:
            if build:
                raise
            notes.append(str(exc))
            problems.append((exc.exit_code, str(exc)))
        fps = config.output.video.fps or info.fps
        if fps is None:
            fps = DEFAULT_FPS
            if build:
                _warn("the input has no frame rate; writing 25 fps (use --fps)")

    mpath = ppath = None
    old_manifest: dict[str, Any] | None = None
    if build:
        check_output_location(out, info)
        mpath, ppath, old_manifest = check_existing_output(config, out)

    device = resolve_device(config.compute.device)
    resolve_precision(config.compute.precision, device)  # an unsupported choice fails first
    # issue 9: without --model/--weights, lossy-coded input gets the robust default when shipped
    default: Path | None = None
    weights_choice: str | None = None
    if model is None and config.model.name is None and config.model.weights is None:
        from satvsr_cli.weights import default_choice

        default, weights_choice = default_choice(info.lossy_coding())
    loaded: LoadedModel | None
    if build or model is not None:
        loaded = _load_model(config, device, model, model_name, default)
    else:
        loaded, more = _describe_model(config, default)
        notes += more
        problems += [(WeightsError.exit_code, note) for note in more]
    # issue 11: the backend, and the precision rule for it (the weights' bf16 check)
    backend = resolve_backend(config.compute.backend, device)
    if (backend != "torch" and config.compute.backend == Backend.auto and old_manifest
            and config.run.existing == ExistingOutput.resume
            and (old_manifest.get("params") or {}).get("backend") == "torch"):
        backend = "torch"  # that run's auto fell back to torch: continue it with torch
    record = None
    if loaded is not None:
        record = (loaded.manifest.precision if loaded.manifest is not None
                  else weights_precision(loaded.network))
    chosen, precision_reason = choose_precision(config.compute.precision, device, backend,
                                                record)
    precision = choice(Precision, chosen)
    size_multiple = size_multiple_of(loaded)

    weights_id = None
    params: dict[str, Any] = {}
    resume: ResumeDecision | None = None
    if build:
        assert loaded is not None and mpath is not None and ppath is not None
        weights_id = loaded.sha256 or state_sha256(loaded.network)
        if model is None and loaded.sha256 is None:
            _warn(f"{loaded.label}: untrained network; the output is not a meaningful "
                  "super-resolution")
        params = job_params(config, info, kind, start, end, device, precision, vrange,
                            loaded.label, weights_id, backend)
        resume = resume_decision(config, out, mpath, ppath, old_manifest, params, _warn)

    name = loaded.name if loaded is not None and loaded.name else model_name
    res = choose_resources(
        config, info, net=loaded.network if loaded is not None else None, name=name,
        size_multiple=size_multiple, device=device, precision=precision, backend=backend,
    )
    if resume is not None and resume.resolved is not None:
        old = resume.resolved
        tile_r = old.get("tile")
        res = Resources(
            tile=(int(tile_r[0]), int(tile_r[1])) if tile_r else res.tile,
            overlap=int(old.get("overlap", res.overlap)), batch=int(old.get("batch", res.batch)),
            cache_budget=res.cache_budget, budget=res.budget, bytes_per_pixel=res.bytes_per_pixel,
        )
    tiles = plan_tiles(info.height, info.width, tile=res.tile, overlap=res.overlap,
                       size_multiple=size_multiple)
    return JobPlan(
        config=config, info=info, output=out, kind=kind, start=start, end=end, bands=bands,
        value_range=vrange, device=device, precision=precision, model=loaded,
        size_multiple=size_multiple, resources=res, tiles=tiles, fps=fps, built=build,
        video=video,
        resume=resume, params=params, weights_id=weights_id, bands_note=bands_note,
        value_range_note=vr_note, warnings=tuple(warnings), notes=tuple(notes),
        problems=tuple(problems), backend=backend, precision_reason=precision_reason,
        weights_choice=weights_choice,
    )
