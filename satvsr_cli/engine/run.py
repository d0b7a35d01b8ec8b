"""The upscale job: reader → ring buffer of 5 frames → :class:`WindowUpscaler` → writer.

:func:`upscale` is the library entry point behind ``satvsr upscale``. It checks everything that
can be checked before any work (input readable, frame range, bands, value range, output path and
overwrite/resume rules, model and weights), then streams: at most the frames of one temporal
window (plus the one being decoded) are held, so memory does not grow with the video length.
Every input frame in the range gives exactly one output frame.

Outputs are written under temporary names (``OUT.partial``) and renamed when complete. The job
manifest ``OUT.satvsr.json`` records the input identity, every setting that affects the output,
the weights sha256 and the progress; ``resume=True`` continues an interrupted run (completed
frame files are verified and kept; video is encoded in segments, and a resumed run re-encodes
only the unfinished one, so the result is byte-identical). Ctrl-C (or SIGTERM) saves progress
and raises :class:`~satvsr_cli.errors.Interrupted` (exit code 130). A user-facing error
(:class:`~satvsr_cli.errors.SatvsrError`) removes everything this job wrote.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from satvsr_cli import __version__
from satvsr_cli.engine.config import (
    BLENDS,
    COMPRESSIONS,
    ProgressEvent,
    UpscaleConfig,
    UpscaleSummary,
)
from satvsr_cli.engine.convert import BandPlan, default_value_range, plan_bands
from satvsr_cli.engine.device import resolve_device, resolve_precision
from satvsr_cli.engine.infer import WindowUpscaler
from satvsr_cli.engine.manifest import differences, manifest_path, read_manifest, write_manifest
from satvsr_cli.engine.memory import (
    MAX_AUTO_TILE,
    MAX_AUTO_TILE_CPU,
    auto_tile,
    bytes_per_lr_pixel,
    device_available,
    peak_rss,
)
from satvsr_cli.engine.tiling import plan_tiles
from satvsr_cli.engine.windows import TEMPORAL_PADDINGS, frame_indices
from satvsr_cli.errors import InputError, Interrupted, OutputError, SatvsrError
from satvsr_cli.io import default_output, open_source, output_kind
from satvsr_cli.io.base import Frame, FrameSink, SourceInfo, partial_path, remove_path

ProgressCallback = Callable[[ProgressEvent], None]
HALF_WINDOW = 2
WINDOW = 5
SCALE = 4
DEFAULT_OVERLAP = 32


# ------------------------------------------------------------------------------------------
# checks and small helpers
# ------------------------------------------------------------------------------------------


def check_config(config: UpscaleConfig) -> None:
    """Reject impossible option values with one line (before anything is opened)."""
    if config.start < 0:
        raise InputError(f"--start must be >= 0, got {config.start}")
    if config.end is not None and config.end <= config.start:
        raise InputError(f"--end ({config.end}) must be larger than --start ({config.start})")
    if config.temporal_padding not in TEMPORAL_PADDINGS:
        raise InputError(
            f"unknown --temporal-padding {config.temporal_padding!r}; use one of "
            f"{', '.join(TEMPORAL_PADDINGS)}"
        )
    if config.blend not in BLENDS:
        raise InputError(f"unknown --blend {config.blend!r}; use one of {', '.join(BLENDS)}")
    if config.tile_overlap is not None and config.tile_overlap < 0:
        raise InputError(f"--tile-overlap must be >= 0, got {config.tile_overlap}")
    tile = config.tile
    if tile is not None:
        dims = (tile, tile) if isinstance(tile, int) else tile
        if any(d < 0 for d in dims):
            raise InputError(f"--tile must be positive, got {tile}")
    if config.batch is not None and config.batch < 1:
        raise InputError(f"--batch must be >= 1, got {config.batch}")
    if config.segment_frames < 1:
        raise InputError(f"--segment-frames must be >= 1, got {config.segment_frames}")
    if config.crf is not None and not 0 <= config.crf <= 63:
        raise InputError(f"--crf must be between 0 and 63, got {config.crf}")
    if config.compress not in COMPRESSIONS:
        raise InputError(f"unknown --compress {config.compress!r}; use one of {', '.join(COMPRESSIONS)}")
    if config.fps is not None and config.fps <= 0:
        raise InputError(f"--fps must be positive, got {config.fps}")
    if config.max_memory is not None and config.max_memory <= 0:
        raise InputError("--max-memory must be positive")


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a model's state dict."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def value_range_for(info: SourceInfo, override: tuple[float, float] | None) -> tuple[float, float]:
    """The normalisation range: ``--value-range`` > metadata > integer dtype range."""
    if info.kind == "geotiff" and info.geo is not None:
        from satvsr_cli.io.geotiff import value_range

        return value_range(info.geo, override)
    if override is None and info.value_range is not None:
        return info.value_range
    return default_value_range(info.dtype, override)


def _check_output_location(out: Path, info: SourceInfo) -> None:
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


@dataclass
class _Resolved:
    """Settings chosen at run time and kept in the manifest so a resumed run reuses them."""

    tile: tuple[int, int] | None
    batch: int
    overlap: int


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while a job runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _upsample_valid(valid: np.ndarray | None) -> np.ndarray | None:
    if valid is None:
        return None
    from satvsr_cli.io.geotiff import upsample_mask

    return upsample_mask(valid, SCALE)


@dataclass(frozen=True)
class Resources:
    """Tile, batch and memory figures chosen for a job (see :func:`choose_resources`)."""

    tile: tuple[int, int] | None
    overlap: int
    batch: int
    cache_budget: int
    budget: int
    bytes_per_pixel: int


def choose_resources(
    config: UpscaleConfig,
    info: SourceInfo,
    *,
    net: Any,
    name: str | None,
    size_multiple: int,
    device: torch.device,
    precision: str,
) -> Resources:
    """Tile size, batch and feature-cache budget from the options and the memory available.

    The overlap defaults to 32 LR pixels, at most a quarter of the tile. The budget is
    ``--max-memory`` or half of what is available (RAM on CPU, free GPU memory on
    CUDA). An automatic tile is the largest square whose estimated peak (bytes per LR pixel of
    the network, measured) fits 60 % of it, at most 256 px on CPU (bigger CPU tiles are slower
    per pixel) and 512 px on CUDA. The automatic batch is 1 on CPU (measured with the
    small presets at 32² to 256² LR tiles, single-threaded: batches of 2 to 8 windows are
    equally fast or up to 40 % slower per window) and up to 8 tiles (or frames) on CUDA, within
    the same budget. The feature cache may use 30 % of the budget on
    CUDA and 12.5 % (at most 512 MiB) on CPU, where ``extract`` is a few per cent of the work.
    """
    per_px = bytes_per_lr_pixel(net, name, half=precision != "fp32")
    budget = config.max_memory or int(0.5 * device_available(device))
    tile: tuple[int, int] | None
    if config.tile == 0:
        tile = None
    elif config.tile is None:
        cap = MAX_AUTO_TILE if device.type == "cuda" else MAX_AUTO_TILE_CPU
        side = auto_tile(int(0.6 * budget), per_px, 1, size_multiple, (info.height, info.width),
                         cap)
        tile = (side, side)
    else:
        tile = (config.tile, config.tile) if isinstance(config.tile, int) else config.tile
    overlap = config.tile_overlap
    if overlap is None:
        overlap = DEFAULT_OVERLAP if tile is None else min(DEFAULT_OVERLAP, min(tile) // 4)
    plan0 = plan_tiles(info.height, info.width, tile=tile, overlap=overlap,
                       size_multiple=size_multiple)
    tile_px = plan0.tile_height * plan0.tile_width
    if config.batch is not None:
        batch = config.batch
    elif device.type == "cuda":
        fit = int((0.6 * budget) // (per_px * tile_px))
        batch = max(1, min(8, fit))
    else:
        batch = 1  # measured: on CPU a batch is never faster per window than batch 1
    cache_budget = 0
    if config.feature_cache:
        cache_budget = (
            int(0.3 * budget) if device.type == "cuda" else int(min(0.125 * budget, 512 << 20))
        )
    return Resources(tile, overlap, batch, cache_budget, budget, per_px)


# ------------------------------------------------------------------------------------------
# sinks
# ------------------------------------------------------------------------------------------


def _make_sink(
    kind: str,
    out: Path,
    info: SourceInfo,
    config: UpscaleConfig,
    *,
    start: int,
    end: int | None,
    tags: dict[str, str],
    bands: BandPlan,
    resume_state: dict[str, Any] | None,
    warn: Callable[[str], None],
) -> FrameSink:
    """The writer for the output kind."""
    resume = resume_state is not None
    width, height = info.width * SCALE, info.height * SCALE
    if kind == "video":
        from satvsr_cli.io.video import VideoSink

        if info.bands not in (1, 3):
            raise OutputError(
                f"{out}: a video needs 1 or 3 bands per frame, the input has {info.bands}; "
                "write a folder or a .tif instead"
            )
        if info.dtype not in ("uint8", "uint16"):
            raise OutputError(
                f"{out}: a video needs 8- or 16-bit frames, the input is {info.dtype}; "
                "write a folder or a .tif instead"
            )
        fps = config.fps or info.fps
        if fps is None:
            fps = Fraction(25)
            warn("the input has no frame rate; writing 25 fps (use --fps)")
        audio_codec = info.audio_codec if (config.audio and info.kind == "video") else None
        return VideoSink(
            out, width=width, height=height, channels=info.bands, dtype=info.dtype, fps=fps,
            first_index=start, codec=config.codec, crf=config.crf, preset=config.preset,
            pix_fmt=config.pix_fmt, encoder_opts=config.encoder_opts,
            segment_frames=config.segment_frames,
            audio_source=Path(info.spec) if audio_codec else None, audio_codec=audio_codec,
            audio_offset=Fraction(start) / (info.fps or fps),
            resume_state=resume_state or {},
        )
    if kind == "frames":
        from satvsr_cli.io.frames import FramesSink, frame_format_for

        fmt = frame_format_for(info.dtype, config.frame_format, info.frame_suffix)
        names = info.frame_names
        lookup = {n: i for i, n in enumerate(names)} if names is not None else None

        def index_of(stem: str) -> int | None:
            if lookup is not None:
                return lookup.get(stem)
            return int(stem) if stem.isdigit() else None

        return FramesSink(
            out, name_of=info.name_of, index_of=index_of,
            wanted=lambda i: i >= start and (end is None or i < end),
            width=width, height=height, bands=info.bands, dtype=info.dtype, fmt=fmt,
            resume=resume,
        )
    from satvsr_cli.io.geoframes import GeoFramesSink, GeoStackSink

    if info.geo is None or end is None:
        raise OutputError(f"{out}: GeoTIFF output needs GeoTIFF input")
    meta = info.geo
    descs: tuple[str | None, ...] | None = None
    if bands.bicubic:
        base = list(meta.band_descriptions) or [None] * meta.count
        descs = tuple(
            (f"{d or f'band {b + 1}'} (bicubic x4)" if b in bands.bicubic else d)
            for b, d in enumerate(base)
        )
    geo_names = [info.name_of(i) for i in range(start, end)]
    cls = GeoStackSink if kind == "geotiff-stack" else GeoFramesSink
    return cls(
        out, meta, names=geo_names, first_index=start, compress=config.compress, cog=config.cog,
        overviews=config.overviews, tags=tags, band_descriptions=descs, resume=resume,
    )


# ------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------


def _load_model(
    config: UpscaleConfig, device: torch.device
) -> tuple[torch.nn.Module, str, str | None, str | None]:
    """(model, display name, weights sha256, registry name) via :func:`resolve_model`."""
    from satvsr_cli.weights import read_manifest as read_weights_manifest
    from satvsr_cli.weights import resolve_model

    torch.manual_seed(config.seed)
    model, display, sha = resolve_model(
        config.model, config.weights, device, allow_random=config.allow_random
    )
    name = config.model
    if config.weights is not None:
        name = read_weights_manifest(config.weights).network
    elif name is None:
        name = display.split(" ", 1)[0]
    return model, display, sha, name


def upscale(
    config: UpscaleConfig,
    *,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> UpscaleSummary:
    """Run one upscale job; see the module docstring.

    Args:
        config: every option.
        model: an already built network (library use and tests); ``None`` resolves
            ``config.model`` / ``config.weights`` (shipped default weights when both are unset).
        model_name: registry name of ``model`` (for the memory estimate and the tags).
        on_progress: called with :class:`ProgressEvent` objects (start, frame, warning, done).

    Returns:
        The :class:`UpscaleSummary`.

    Raises:
        SatvsrError: bad input, output, weights or options (nothing of this job is left behind);
            :class:`Interrupted` after Ctrl-C (progress saved for ``resume``).
    """
    t_start = time.perf_counter()
    emit = on_progress or (lambda _e: None)
    warnings_list: list[str] = []

    def warn(msg: str) -> None:
        warnings_list.append(msg)
        emit(ProgressEvent("warning", message=msg, elapsed_s=time.perf_counter() - t_start))

    check_config(config)
    source = open_source(
        config.input, config.input_type, bands_per_frame=config.bands_per_frame,
        autorotate=config.autorotate,
    )
    with source:
        info = source.info
        out = Path(config.output) if config.output else default_output(info)
        kind = output_kind(out, info)
        n_in = info.n_frames
        start = config.start
        end = config.end
        if n_in is not None and info.n_frames_exact:
            if start >= n_in:
                raise InputError(
                    f"--start {start} is past the end of the input ({n_in} frame"
                    f"{'s' if n_in != 1 else ''})"
                )
            if end is not None and end > n_in:
                warn(f"--end {end} is past the end of the input; stopping at frame {n_in}")
            end = n_in if end is None else min(end, n_in)
        if info.vfr:
            warn("the video seems to have a variable frame rate; output frames keep their "
                 f"order at a constant {info.fps} fps")
        bands = plan_bands(info.bands, config.bands)
        vrange = value_range_for(info, config.value_range)
        _check_output_location(out, info)

        mpath = manifest_path(out)
        ppath = partial_path(out)
        if out.exists() and not config.overwrite:
            raise OutputError(f"{out} already exists; add --overwrite to replace it")
        old_manifest = read_manifest(mpath) if mpath.exists() else None
        if not config.resume and (ppath.exists() or old_manifest is not None):
            if not config.overwrite:
                raise OutputError(
                    f"{out}: an unfinished run exists ({ppath.name}); add --resume to continue it "
                    "or --overwrite to start again"
                )
            remove_path(ppath)
            mpath.unlink(missing_ok=True)
            old_manifest = None

        device = resolve_device(config.device)
        precision = resolve_precision(config.precision, device)
        if model is None:
            net, display, sha, name = _load_model(config, device)
        else:
            net, display, sha, name = model, model_name or type(model).__name__, None, model_name
        net = net.eval().to(device)
        weights_id = sha or state_sha256(net)
        if model is None and sha is None:
            warn(f"{display}: untrained network; the output is not a meaningful super-resolution")

        params: dict[str, Any] = {
            "input": info.identity, "input_kind": info.kind, "output_kind": kind,
            "start": start, "end": end, "temporal_padding": config.temporal_padding,
            "tile": config.tile, "tile_overlap": config.tile_overlap, "blend": config.blend,
            "batch": config.batch, "device": device.type, "precision": precision,
            "value_range": list(vrange), "bands": config.bands,
            "bands_per_frame": config.bands_per_frame, "fps": str(config.fps),
            "codec": config.codec, "crf": config.crf, "preset": config.preset,
            "pix_fmt": config.pix_fmt, "encoder_opts": list(config.encoder_opts),
            "audio": config.audio, "segment_frames": config.segment_frames,
            "frame_format": config.frame_format, "compress": config.compress, "cog": config.cog,
            "overviews": config.overviews, "autorotate": config.autorotate,
            "model": display, "weights_sha256": weights_id,
        }
        resume_state: dict[str, Any] | None = None
        resolved_old: dict[str, Any] | None = None
        if config.resume:
            if old_manifest is not None:
                diff = differences(old_manifest.get("params", {}), params)
                if diff:
                    raise OutputError(
                        f"--resume: the unfinished run of {out} used different settings "
                        f"({', '.join(diff[:6])}); repeat its options or use --overwrite"
                    )
                resume_state = dict(old_manifest.get("sink", {}))
                resolved_old = dict(old_manifest.get("resolved", {}))
            else:
                if ppath.exists():
                    remove_path(ppath)
                warn(f"--resume: no unfinished run of {out} found; starting from the beginning")

        # ----- memory, tile and batch
        m = int(getattr(net, "size_multiple", 1) or 1)
        res = choose_resources(
            config, info, net=net, name=name, size_multiple=m, device=device,
            precision=precision,
        )
        tile, batch, cache_budget = res.tile, res.batch, res.cache_budget
        overlap = res.overlap
        if resolved_old is not None:
            tile_r = resolved_old.get("tile")
            tile = (int(tile_r[0]), int(tile_r[1])) if tile_r else tile
            batch = int(resolved_old.get("batch", batch))
            overlap = int(resolved_old.get("overlap", overlap))
        resolved = _Resolved(tile=tile, batch=batch, overlap=overlap)

        up = WindowUpscaler(
            net, device=device, precision=precision, tile=tile, overlap=overlap,
            blend=config.blend, batch=batch, cache_budget=cache_budget, bands=bands,
            value_range=vrange, out_dtype=info.dtype, on_warning=warn,
        )
        plan = up.set_frame_size(info.height, info.width)

        tags = {
            "SATVSR_MODEL": display,
            "SATVSR_WEIGHTS_SHA256": sha or f"(random init, state {weights_id})",
            "SATVSR_VERSION": __version__,
            "SATVSR_WINDOW": str(WINDOW),
            "SATVSR_TEMPORAL_PADDING": config.temporal_padding,
            "SATVSR_TILE": f"{plan.tile_height}x{plan.tile_width}",
            "SATVSR_OVERLAP": str(up.plan.overlap if up.plan is not None else overlap),
            "SATVSR_BLEND": config.blend,
            "SATVSR_PRECISION": precision,
            "SATVSR_NORM": f"linear {vrange[0]:g},{vrange[1]:g}",
            "SATVSR_BANDS": bands.describe(),
            "SATVSR_SOURCE": str(info.spec),
        }
        if bands.bicubic:
            tags["SATVSR_BICUBIC_BANDS"] = ",".join(str(b + 1) for b in bands.bicubic)

        sink = _make_sink(
            kind, out, info, config, start=start, end=end, tags=tags, bands=bands,
            resume_state=resume_state, warn=warn,
        )
        job = _Job(
            config=config, info=info, sink=sink, up=up, out=out, kind=kind,
            mpath=mpath, params=params, resolved=resolved, start=start, end=end, emit=emit,
            t_start=t_start, warn=warn,
        )
        try:
            with _sigterm_as_interrupt():
                job.run(source)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            sink.discard_pending()
            job.save_progress(interrupted=True)
            raise Interrupted(
                f"interrupted after {job.completed} frame(s); run the same command with --resume "
                "to continue"
            ) from None
        except SatvsrError:
            sink.abort()
            mpath.unlink(missing_ok=True)
            raise
        except BaseException:
            sink.discard_pending()
            job.save_progress(interrupted=True)
            raise
        try:
            final = sink.commit()
        except SatvsrError as exc:
            # every frame is done: keep them so that --resume only has to finish the output
            raise type(exc)(f"{exc}; the finished frames are kept, rerun with --resume") from None
        mpath.unlink(missing_ok=True)
        warnings_list.extend(getattr(sink, "warnings", []))

    wall = time.perf_counter() - t_start
    stats = up.stats
    peak_dev = None
    if device.type == "cuda":
        peak_dev = int(torch.cuda.max_memory_allocated(device))
    assert up.plan is not None
    summary = UpscaleSummary(
        output=final,
        output_kind=kind,
        frames_written=job.computed,
        frames_resumed=job.skipped,
        frames_total=job.computed + job.skipped,
        wall_s=wall,
        fps=job.computed / job.compute_time if job.compute_time > 0 else 0.0,
        peak_rss_bytes=peak_rss(),
        peak_device_bytes=peak_dev,
        device=str(device),
        precision=precision,
        model=display,
        weights_sha256=sha,
        tile=(up.plan.tile_height, up.plan.tile_width),
        tiles_per_frame=up.plan.n_tiles,
        batch=up.batch,
        oom_retries=stats.oom_retries,
        nonfinite_retries=stats.nonfinite_retries,
        warnings=tuple(warnings_list),
        stats={"windows": stats.windows, "tiles": stats.tiles, "extracted": stats.extracted,
               "cache_hits": stats.cache_hits, "nonfinite_left": stats.nonfinite_left,
               "bands": bands.describe(), "value_range": list(vrange)},
    )
    emit(ProgressEvent("done", done=summary.frames_total, total=summary.frames_total,
                       elapsed_s=wall, fps=summary.fps, info=summary.to_json()))
    return summary


class _Job:
    """The streaming loop of one run, with its progress and manifest bookkeeping."""

    def __init__(
        self,
        *,
        config: UpscaleConfig,
        info: SourceInfo,
        sink: FrameSink,
        up: WindowUpscaler,
        out: Path,
        kind: str,
        mpath: Path,
        params: dict[str, Any],
        resolved: _Resolved,
        start: int,
        end: int | None,
        emit: ProgressCallback,
        t_start: float,
        warn: Callable[[str], None],
    ) -> None:
        self.config, self.info, self.sink, self.up = config, info, sink, up
        self.out, self.kind, self.mpath = out, kind, mpath
        self.params, self.resolved = params, resolved
        self.start, self.end = start, end
        self.emit, self.t_start, self.warn = emit, t_start, warn
        self.computed = 0
        self.skipped = 0
        self.compute_time = 0.0
        self.completed = 0
        self._last_save = 0.0
        self._last_state: dict[str, Any] | None = None

    # ----- manifest
    def save_progress(self, interrupted: bool = False) -> None:
        """Write the job manifest (settings, resolved tile/batch, sink state, progress)."""
        plan = self.up.plan
        tile = [plan.tile_height, plan.tile_width] if plan is not None else None
        write_manifest(self.mpath, {
            "output": str(self.out),
            "params": self.params,
            "resolved": {"tile": tile, "batch": self.up.batch, "overlap": self.up.overlap},
            "sink": self.sink.state(),
            "frames_done": len(self.sink.done()),
            "environment": {"torch": torch.__version__, "numpy": np.__version__,
                            "python": platform.python_version(),
                            "device": str(self.up.device)},
            "interrupted": interrupted,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        self._last_save = time.perf_counter()
        self._last_state = self.sink.state()

    def _maybe_save(self) -> None:
        state = self.sink.state()
        if state != self._last_state or time.perf_counter() - self._last_save > 2.0:
            self.save_progress()

    # ----- loop
    def run(self, source: Any) -> None:
        """Stream the frames through the engine into the sink."""
        done = self.sink.done()
        start, end = self.start, self.end
        first_todo = start
        while first_todo in done and (end is None or first_todo < end):
            first_todo += 1
        per_call = self.up.frames_per_call()
        first_todo = start + (first_todo - start) // per_call * per_call
        self.skipped = len([i for i in done if i >= start and (end is None or i < end)])
        self.completed = self.skipped
        self.save_progress()
        total = (end - start) if end is not None else None
        self.emit(ProgressEvent(
            "start", done=self.skipped, total=total, total_exact=self.info.n_frames_exact,
            elapsed_s=time.perf_counter() - self.t_start,
            info={"output": str(self.out), "output_kind": self.kind,
                  "tile": [self.up.plan.tile_height, self.up.plan.tile_width] if self.up.plan else None,
                  "tiles_per_frame": self.up.plan.n_tiles if self.up.plan else None,
                  "batch": self.up.batch, "device": str(self.up.device),
                  "precision": self.up.precision, "resumed": self.skipped},
        ))
        if end is not None and first_todo >= end:
            return
        read_from = max(0, first_todo - HALF_WINDOW)
        frames_iter = source.frames(read_from)
        ring: dict[int, Frame] = {}
        last_read = read_from - 1
        eof = False

        def fill(upto: int) -> None:
            nonlocal last_read, eof
            while not eof and last_read < upto:
                try:
                    f = next(frames_iter)
                except StopIteration:
                    eof = True
                    break
                ring[f.index] = f
                last_read = f.index

        padding = self.config.temporal_padding
        t = first_todo
        while end is None or t < end:
            # Frames go to the network in chunks aligned to ``start``, so that a resumed run
            # batches exactly as an uninterrupted one (bit-identical results).
            per_call = self.up.frames_per_call()
            c0 = start + (t - start) // per_call * per_call
            c1 = c0 + per_call if end is None else min(c0 + per_call, end)
            if all(u in done for u in range(c0, c1)):
                t = c1
            else:
                fill(c1 - 1 + HALF_WINDOW)
                items = [u for u in range(c0, c1) if u <= last_read]
                if not items:
                    if c0 <= start:
                        raise InputError(f"--start {start} is past the end of the input")
                    break  # the clip ended before the estimated count
                n_known = last_read + 1
                work = [
                    (u, frame_indices(u, n_known, WINDOW, padding))  # type: ignore[arg-type]
                    for u in items
                ]
                t0 = time.perf_counter()
                writers: list[Any] = [None] * len(items)
                if self.up.can_stream():
                    # rows go straight to the file: no full x4 frame in memory
                    writers = [
                        None if u in done else self.sink.open_rows(u, ring[u].valid is not None)
                        for u in items
                    ]
                try:
                    outs = self.up.upscale_many(work, ring, writers)
                except BaseException:
                    for w in writers:
                        if w is not None:
                            w.abort()
                    raise
                new = 0
                for u, hr, w in zip(items, outs, writers, strict=True):
                    if u in done:
                        continue
                    if w is not None:
                        self.sink.close_rows(u, w)
                    else:
                        assert hr is not None
                        self.sink.write(u, hr.transpose(1, 2, 0), _upsample_valid(ring[u].valid))
                    new += 1
                del outs
                self.compute_time += time.perf_counter() - t0
                self.computed += new
                self.completed += new
                self._maybe_save()
                self._progress(items[-1], total, eof, last_read)
                t = items[-1] + 1
                if len(items) < c1 - c0:
                    break  # end of the clip inside the chunk
            for j in [j for j in ring if j < t - HALF_WINDOW]:
                del ring[j]
                self.up.forget(j)
        if end is None:
            self.end = t

    def _progress(self, t: int, total: int | None, eof: bool, last_read: int) -> None:
        if total is None and eof:
            total = last_read + 1 - self.start
        fps = self.computed / self.compute_time if self.compute_time > 0 else None
        remaining = (total - self.completed) if total is not None else None
        eta = remaining / fps if (fps and remaining is not None) else None
        self.emit(ProgressEvent(
            "frame", done=self.completed, total=total,
            total_exact=self.info.n_frames_exact or eof,
            elapsed_s=time.perf_counter() - self.t_start, fps=fps,
            eta_s=eta if eta is None or math.isfinite(eta) else None, frame=t,
        ))
