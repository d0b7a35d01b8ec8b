"""`satvsr upscale` command (thin: parse options, call the library, render)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import time
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from satvsr_cli.cli._app import EXPECTED, app, error_line, guarded
from satvsr_cli.errors import InputError, SatvsrError
from satvsr_cli.options import (
    Backend,
    Blend,
    Compression,
    FrameFormat,
    InputType,
    Precision,
    TemporalPadding,
)

if TYPE_CHECKING:
    from satvsr_cli.engine.batch import BatchResult
    from satvsr_cli.engine.config import ProgressEvent, UpscaleConfig, UpscaleSummary

IO_PANEL = "Input and output"
MODEL_PANEL = "Network"
COMPUTE_PANEL = "Compute: device, precision, tiles, memory"
VALUES_PANEL = "Values and bands"
VIDEO_PANEL = "Video output"
RASTER_PANEL = "Frame and GeoTIFF output"
DISPLAY_PANEL = "Display"


class ProgressMode(StrEnum):
    """Progress display."""

    auto = "auto"
    rich = "rich"
    plain = "plain"
    json = "json"
    none = "none"


# ----------------------------------------------------------------------------------------------
# option parsers (pure; raise InputError with one line)
# ----------------------------------------------------------------------------------------------


def parse_tile(text: str | None) -> int | tuple[int, int] | None:
    """``auto`` → None, ``0``/``none`` → 0 (whole frames), ``256`` → 256, ``256x128`` → (256, 128) (HxW)."""
    if text is None:
        return None
    t = text.strip().lower()
    if t in ("", "auto"):
        return None
    if t in ("0", "none", "off"):
        return 0
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", t)
    if not m:
        raise InputError(f"--tile must be auto, 0, N or HxW (LR pixels), got {text!r}")
    if m.group(2) is None:
        return int(m.group(1))
    return (int(m.group(1)), int(m.group(2)))


def parse_pair(text: str | None, flag: str) -> tuple[float, float] | None:
    """``"0,4095"`` → (0.0, 4095.0)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"{flag} must be LO,HI (two numbers), got {text!r}") from None
    if not lo < hi:
        raise InputError(f"{flag} {text}: LO must be smaller than HI")
    return lo, hi


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"3,2,1"`` → (3, 2, 1) (1-based band numbers)."""
    if text is None:
        return None
    try:
        bands = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise InputError(f"--bands must be 1-based band numbers like 3,2,1, got {text!r}") from None
    if len(bands) not in (1, 3):
        raise InputError(f"--bands takes 1 or 3 band numbers, got {text!r}")
    return bands


def parse_window(text: str | None) -> tuple[int, int, int, int] | None:
    """``"X,Y,W,H"`` (LR pixels, GDAL's ``-srcwin``) → (x, y, w, h)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"--window must be X,Y,W,H (whole LR pixels), got {text!r}")
    x, y, w, h = (int(g) for g in m.groups())
    if w < 1 or h < 1:
        raise InputError(f"--window {text}: W and H must be at least 1")
    return x, y, w, h


def parse_size(text: str | None) -> int | None:
    """``"4G"``, ``"512M"``, ``"1.5GiB"`` → bytes."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not m:
        raise InputError(f"--max-memory must look like 4G or 512M, got {text!r}")
    try:
        value = float(m.group(1))
    except ValueError:
        raise InputError(f"--max-memory must look like 4G or 512M, got {text!r}") from None
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(value * mult)


def parse_fps(text: str | None) -> Fraction | None:
    """``"30000/1001"`` or ``"29.97"`` → Fraction (29.97 → 30000/1001)."""
    if text is None:
        return None
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = Fraction(int(num), int(den))
        else:
            from satvsr_cli.io.video import fps_from_float

            value = fps_from_float(float(text))
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--fps must be a number or a ratio like 30000/1001, got {text!r}") from None
    if value <= 0:
        raise InputError(f"--fps must be positive, got {text!r}")
    return value


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Renderer:
    """Turns :class:`ProgressEvent` objects into rich progress, plain lines or JSON on stderr."""

    def __init__(self, mode: str, quiet: bool) -> None:
        """``mode``: auto, rich, plain, json or none."""
        if quiet:
            mode = "none"
        if mode == "auto":
            mode = "rich" if sys.stderr.isatty() else "plain"
        self.mode = mode
        self._progress: Any = None
        self._task: Any = None
        self._tile_task: Any = None
        self._last_plain = 0.0
        self._console: Any = None

    def console(self) -> Any:
        """The stderr rich console."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def error(self, message: str, code: int) -> None:
        """An error as a JSON event on stderr (``--progress json``)."""
        self.stop()
        payload = {"event": "error", "message": message, "exit_code": code}
        sys.stderr.write(json.dumps(payload) + "\n")
        sys.stderr.flush()

    def __call__(self, ev: ProgressEvent) -> None:
        """Render one event."""
        if ev.event == "done" and ev.message and self.mode in ("none", "plain", "rich"):
            sys.stderr.write(ev.message + "\n")
        if self.mode == "none":
            if ev.event == "warning" and ev.message:
                sys.stderr.write(f"warning: {ev.message}\n")
            return
        if self.mode == "json":
            payload = {"event": ev.event, **ev.to_json()}
            payload.pop("info", None) if ev.event == "done" else None
            sys.stderr.write(json.dumps(payload, default=str) + "\n")
            sys.stderr.flush()
            return
        if ev.event == "warning":
            text = f"warning: {ev.message}"
            if self._progress is not None:
                self._progress.console.print(f"[yellow]{text}[/yellow]", highlight=False)
            else:
                sys.stderr.write(text + "\n")
            return
        if self.mode == "plain":
            self._plain(ev)
        else:
            self._rich(ev)

    def _plain(self, ev: ProgressEvent) -> None:
        now = time.monotonic()
        if ev.event == "start":
            info = ev.info
            sys.stderr.write(
                f"upscaling → {info.get('output')} ({info.get('output_kind')}); "
                f"tile {info.get('tile')} x{info.get('tiles_per_frame')} per frame, "
                f"{info.get('device')} {info.get('precision')}"
                + (f"; resuming after {ev.done} frames" if ev.done else "")
                + "\n"
            )
        elif ev.event == "tile" and now - self._last_plain >= 5.0:
            self._last_plain = now
            sys.stderr.write(f"frame {ev.frame}: tile {ev.tiles_done}/{ev.tiles_total}\n")
        elif ev.event == "frame" and (now - self._last_plain >= 5.0 or ev.done == ev.total):
            self._last_plain = now
            total = f"{'' if ev.total_exact else '≈'}{ev.total}" if ev.total is not None else "?"
            fps = f"{ev.fps:.2f}" if ev.fps else "-"
            sys.stderr.write(f"frame {ev.done}/{total}  {fps} fps  ETA {_fmt_time(ev.eta_s)}\n")
        sys.stderr.flush()

    def _rich(self, ev: ProgressEvent) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if ev.event == "start":
            info = ev.info
            self.console().print(
                f"[bold]upscaling[/bold] → {info.get('output')} ({info.get('output_kind')}); "
                f"tile {info.get('tile')} ×{info.get('tiles_per_frame')}/frame, batch "
                f"{info.get('batch')}, {info.get('device')} {info.get('precision')}"
                + (f"; resuming after {ev.done} frames" if ev.done else ""),
                highlight=False,
            )
            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fps]} fps"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "frames", total=ev.total, completed=ev.done, fps="-"
            )
        elif ev.event == "tile" and self._progress is not None:
            # huge frames: a second bar for the tiles of the frame being computed
            if self._tile_task is None:
                self._tile_task = self._progress.add_task("tiles", total=ev.tiles_total, fps="")
            self._progress.update(
                self._tile_task, completed=ev.tiles_done, total=ev.tiles_total,
                description=f"frame {ev.frame} tiles",
            )
        elif ev.event == "frame" and self._progress is not None:
            self._progress.update(
                self._task, completed=ev.done, total=ev.total,
                fps=f"{ev.fps:.2f}" if ev.fps else "-",
            )
        elif ev.event == "done":
            self.stop()

    def stop(self) -> None:
        """Stop a live display (also on errors)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def render_summary(summary: UpscaleSummary, mode: str, quiet: bool) -> None:
    """The closing summary on stdout: a rich table, or one JSON object with ``--progress json``."""
    if quiet or mode == "none":
        return
    if mode == "json":
        sys.stdout.write(json.dumps({"event": "summary", **summary.to_json()}, default=str) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    from satvsr_cli.engine.memory import format_bytes

    table = Table(title="satvsr upscale", show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    frames = f"{summary.frames_written}"
    if summary.frames_resumed:
        frames += f" (+{summary.frames_resumed} from the earlier run)"
    rows = [
        ("output", f"{summary.output} ({summary.output_kind})"),
        ("frames", frames),
        ("wall time", f"{summary.wall_s:.1f} s"),
        ("speed", f"{summary.fps:.2f} frames/s"),
        ("peak memory", format_bytes(summary.peak_rss_bytes)
         + (f" RAM, {format_bytes(summary.peak_device_bytes)} GPU"
            if summary.peak_device_bytes is not None else "")),
        ("network", summary.model + (f"  sha256 {summary.weights_sha256[:12]}…"
                                     if summary.weights_sha256 else "")
         + (f" ({summary.weights_choice})" if summary.weights_choice else "")),
        ("device", f"{summary.device}, {summary.precision}"),
        ("backend", f"{summary.backend}"
         + (f", {summary.threads} threads" if summary.threads else "")
         + (f" ({summary.precision_reason})" if summary.precision_reason else "")),
        ("tiles", (f"{summary.tile[0]}x{summary.tile[1]} LR px, "
                   f"{summary.tiles_per_frame}/frame, batch {summary.batch}")),
    ]
    if summary.oom_retries:
        rows.append(("out-of-memory retries", str(summary.oom_retries)))
    if summary.nonfinite_retries:
        rows.append(("tiles redone in fp32", str(summary.nonfinite_retries)))
    if summary.warnings:
        rows.append(("warnings", str(len(summary.warnings))))
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


#: Text options and their parsers (everything else is passed on as Typer gives it).
_PARSERS: dict[str, Any] = {
    "tile": parse_tile,
    "batch": lambda t: None if t in (None, "auto") else _int(t, "--batch"),
    "max_memory": parse_size,
    "value_range": lambda t: parse_pair(t, "--value-range"),
    "bands": parse_bands,
    "window": parse_window,
    "fps": parse_fps,
    "output": lambda p: None if p is None else str(p),
    "weights": lambda p: None if p is None else str(p),
    "encoder_opt": lambda opts: tuple(opts or ()),
}


def build_config(**kw: Any) -> UpscaleConfig:
    """The :class:`UpscaleConfig` of the CLI options: the text ones parsed, the choices (already
    the enums of :mod:`satvsr_cli.options`) used as they are; flags not given keep their
    defaults."""
    from satvsr_cli.engine.config import UpscaleConfig

    flags = {k: _PARSERS[k](v) if k in _PARSERS else v for k, v in kw.items()}
    if "encoder_opt" in flags:
        flags["encoder_opts"] = flags.pop("encoder_opt")
    return UpscaleConfig.from_flags(**flags)


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{flag} must be auto or a whole number, got {text!r}") from None


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------


@app.command("upscale")
@guarded
def upscale_cmd(
    inputs: Annotated[list[str], typer.Argument(
        metavar="INPUT...",
        help="Video file, folder or glob of frames (PNG/TIFF) or GeoTIFFs, or one GeoTIFF. "
             "Several inputs (paths, a glob of videos or folders, or @list.txt with one per "
             "line) write one output each into the -o folder.",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", rich_help_panel=IO_PANEL,
        help="Output: a video suffix (.mp4 .mkv .mov .avi .webm) writes a video, .tif one stacked "
             "GeoTIFF, anything else a folder of frames. Default: INPUT_x4 beside the input.")] = None,
    input_type: Annotated[InputType, typer.Option(
        rich_help_panel=IO_PANEL, help="Override the detected input type.")] = InputType.auto,
    start: Annotated[int, typer.Option(
        rich_help_panel=IO_PANEL, min=0,
        help="First output frame (0-based). Context frames before it are still read.")] = 0,
    end: Annotated[int | None, typer.Option(
        rich_help_panel=IO_PANEL, min=1,
        help="Stop before this frame (exclusive). Default: the end of the input.")] = None,
    window: Annotated[str | None, typer.Option(
        rich_help_panel=IO_PANEL,
        help="Upscale only this part of every frame: X,Y,W,H in input pixels (like GDAL's "
             "-srcwin); GeoTIFF georeferencing follows.")] = None,
    independent: Annotated[bool, typer.Option(
        "--independent", rich_help_panel=IO_PANEL,
        help="Upscale every frame alone (its temporal window filled with itself): for folders "
             "of unrelated images.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", rich_help_panel=IO_PANEL,
        help="Replace an existing output (and discard an unfinished run).")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", rich_help_panel=IO_PANEL,
        help="Continue an interrupted run of the same command; the result is byte-identical "
             "to an uninterrupted run.")] = False,
    compare: Annotated[Path | None, typer.Option(
        "--compare", rich_help_panel=IO_PANEL,
        help="Also write bicubic | satvsr side by side, labelled: a .png of one frame, or a "
             "video (.mp4 ...) of every output frame.")] = None,
    compare_frame: Annotated[int | None, typer.Option(
        "--compare-frame", rich_help_panel=IO_PANEL, min=0,
        help="Output frame (0-based) for a --compare .png. Default: the middle one.")] = None,
    model: Annotated[str | None, typer.Option(
        "-m", "--model", rich_help_panel=MODEL_PANEL,
        help="Network name (see `satvsr models`); uses its shipped weights. Default: the best "
             "shipped weights.")] = None,
    weights: Annotated[Path | None, typer.Option(
        "-w", "--weights", rich_help_panel=MODEL_PANEL,
        help="A .safetensors weights file with its .json manifest.")] = None,
    allow_random: Annotated[bool, typer.Option(
        "--allow-random", rich_help_panel=MODEL_PANEL,
        help="Run an untrained (randomly initialised) network when no weights exist: for "
             "testing only, the output is meaningless.")] = False,
    seed: Annotated[int, typer.Option(
        rich_help_panel=MODEL_PANEL, help="Seed of --allow-random initialisation.")] = 0,
    device: Annotated[str, typer.Option(
        rich_help_panel=COMPUTE_PANEL, help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[Precision, typer.Option(
        rich_help_panel=COMPUTE_PANEL,
        help="auto = bf16 where the CPU (AMX/AVX-512-bf16) or GPU runs it fast and the weights' "
             "manifest records bf16 within 0.05 dB PSNR of fp32, else fp32. Tiles with NaN/Inf "
             "are redone in fp32.")] = Precision.auto,
    backend: Annotated[Backend, typer.Option(
        rich_help_panel=COMPUTE_PANEL,
        help="auto = OpenVINO on CPU when installed (pip install 'satvsr\\[openvino]') and the "
             "network converts, else torch.")] = Backend.auto,
    threads: Annotated[int | None, typer.Option(
        rich_help_panel=COMPUTE_PANEL, min=1,
        help="CPU threads. Default: $SATVSR_THREADS, else one per physical core.")] = None,
    tile: Annotated[str, typer.Option(
        rich_help_panel=COMPUTE_PANEL,
        help="Tile size in LR pixels: auto (from available memory), 0 (whole frames), N or HxW. "
             "Out of memory halves it and redoes the frame.")] = "auto",
    tile_overlap: Annotated[int | None, typer.Option(
        rich_help_panel=COMPUTE_PANEL, min=0,
        help="Overlap of neighbouring tiles in LR pixels (default the network's: 32, 48 for "
             "lgtd_base; at most a quarter of the tile); seams are exact when the network's receptive field is within a third of "
             "it.")] = None,
    blend: Annotated[Blend, typer.Option(
        rich_help_panel=COMPUTE_PANEL, help="Seam blending in the overlaps.")] = Blend.cosine,
    batch: Annotated[str, typer.Option(
        rich_help_panel=COMPUTE_PANEL,
        help="Tiles/windows per network call: auto or N.")] = "auto",
    max_memory: Annotated[str | None, typer.Option(
        rich_help_panel=COMPUTE_PANEL,
        help="Memory budget for tiles and the feature cache, e.g. 4G. Default: half of what "
             "is available.")] = None,
    feature_cache: Annotated[bool, typer.Option(
        "--feature-cache/--no-feature-cache", rich_help_panel=COMPUTE_PANEL,
        help="Compute each frame's features once and share them between the 5 windows "
             "(same output).")] = True,
    temporal_padding: Annotated[TemporalPadding, typer.Option(
        rich_help_panel=COMPUTE_PANEL,
        help="Clip ends: centre (the papers' protocol: missing neighbours → the centre frame), "
             "reflect or replicate.")] = TemporalPadding.centre,
    value_range: Annotated[str | None, typer.Option(
        rich_help_panel=VALUES_PANEL,
        help="LO,HI mapped to [0,1] for the network and back (e.g. 0,4095 for 12-bit data). "
             "Default: metadata, else 0-255 / 0-65535; never guessed from pixel values.")] = None,
    bands: Annotated[str | None, typer.Option(
        rich_help_panel=VALUES_PANEL,
        help="1-based bands the network sees, e.g. 3,2,1; other bands are upscaled bicubic. "
             "Default: 1 band → replicated to RGB; >3 bands → each triplet in turn.")] = None,
    bands_per_frame: Annotated[int | None, typer.Option(
        rich_help_panel=VALUES_PANEL, min=1,
        help="Split one multi-band GeoTIFF into frames of K bands.")] = None,
    codec: Annotated[str | None, typer.Option(
        rich_help_panel=VIDEO_PANEL,
        help="ffmpeg video encoder. Default: libx264, or libx265 when the x4 frames are beyond "
             "H.264's limits (level 6.2: 139264 macroblocks, e.g. 8192x4320).")] = None,
    crf: Annotated[int | None, typer.Option(
        rich_help_panel=VIDEO_PANEL, min=0, max=63,
        help="Constant rate factor (x264/x265/VP9/AV1).")] = 18,
    preset: Annotated[str | None, typer.Option(
        rich_help_panel=VIDEO_PANEL, help="Encoder preset, e.g. slow, medium, veryfast.")] = None,
    pix_fmt: Annotated[str | None, typer.Option(
        rich_help_panel=VIDEO_PANEL,
        help="Output pixel format. Default: the chroma subsampling of a video input (4:4:4 → "
             "yuv444p, 4:2:0 → yuv420p), yuv420p for images; 10-bit for >8-bit input.")] = None,
    encoder_opt: Annotated[list[str] | None, typer.Option(
        rich_help_panel=VIDEO_PANEL,
        help="Extra encoder option KEY=VALUE (repeatable), e.g. tune=grain.")] = None,
    audio: Annotated[bool, typer.Option(
        "--audio/--no-audio", rich_help_panel=VIDEO_PANEL,
        help="Copy the source audio (re-encoded only if the container refuses it).")] = True,
    fps: Annotated[str | None, typer.Option(
        rich_help_panel=VIDEO_PANEL,
        help="Output frame rate (e.g. 30000/1001). Default: the source's exact rate.")] = None,
    segment_frames: Annotated[int, typer.Option(
        rich_help_panel=VIDEO_PANEL, min=1,
        help="Frames per independently encoded segment (the unit of --resume).")] = 100,
    autorotate: Annotated[bool, typer.Option(
        "--autorotate/--no-autorotate", rich_help_panel=VIDEO_PANEL,
        help="Deliver rotated (phone/drone) videos upright.")] = True,
    frame_format: Annotated[FrameFormat | None, typer.Option(
        rich_help_panel=RASTER_PANEL,
        help="png or tif for frame folders. Default: like the input (PNG for video).")] = None,
    compress: Annotated[Compression, typer.Option(
        rich_help_panel=RASTER_PANEL, help="GeoTIFF compression.")] = Compression.deflate,
    cog: Annotated[bool, typer.Option(
        "--cog", rich_help_panel=RASTER_PANEL, help="Write Cloud Optimized GeoTIFFs.")] = False,
    overviews: Annotated[bool, typer.Option(
        "--overviews", rich_help_panel=RASTER_PANEL,
        help="Build overviews in (non-COG) GeoTIFF output.")] = False,
    quiet: Annotated[bool, typer.Option(
        "-q", "--quiet", rich_help_panel=DISPLAY_PANEL,
        help="No progress and no summary (errors and warnings only).")] = False,
    progress: Annotated[ProgressMode, typer.Option(
        rich_help_panel=DISPLAY_PANEL,
        help="auto (rich on a terminal, plain lines otherwise), rich, plain, json (one JSON "
             "object per line on stderr: start, tile, frame, warning, done and error events; "
             "the summary as JSON on stdout) or none.")] = ProgressMode.auto,
    nproc: Annotated[int | None, typer.Option(
        "--nproc", rich_help_panel=COMPUTE_PANEL, min=1,
        help="Split the job over N processes on this machine (torchrun's elastic launcher; "
             "one GPU each, or the CPU cores shared out). Many machines: see the README.")] = None,
    max_restarts: Annotated[int, typer.Option(
        "--max-restarts", rich_help_panel=COMPUTE_PANEL, min=0,
        help="With --nproc: restart the processes up to K times after a failure; they continue "
             "where they were.")] = 0,
) -> None:
    """Super-resolve a satellite video, frame folder or GeoTIFF stack x4.

    Example: [bold]satvsr upscale demo/freeway_drift.mp4 -o freeway_x4.mp4[/bold]
    """
    from satvsr_cli.engine.batch import expand_inputs
    from satvsr_cli.engine.distributed import dist_env

    expanded, many = expand_inputs(inputs)
    flags: dict[str, Any] = dict(  # noqa: C408  (the flag names, as keywords)
        input=expanded[0], output=output, input_type=input_type, model=model, weights=weights,
        allow_random=allow_random, seed=seed, start=start, end=end, overwrite=overwrite,
        window=window, independent=independent,
        resume=resume, device=device, precision=precision, tile=tile,
        tile_overlap=tile_overlap, blend=blend, batch=batch, max_memory=max_memory,
        feature_cache=feature_cache, temporal_padding=temporal_padding,
        value_range=value_range, bands=bands, bands_per_frame=bands_per_frame, codec=codec,
        crf=crf, preset=preset, pix_fmt=pix_fmt, encoder_opt=encoder_opt, audio=audio, fps=fps,
        segment_frames=segment_frames, autorotate=autorotate, frame_format=frame_format,
        compress=compress, cog=cog, overviews=overviews, backend=backend, threads=threads,
    )
    if compare_frame is not None and compare is None:
        raise InputError("--compare-frame needs --compare")
    if compare is not None:
        from satvsr_cli.engine.compare import check_compare_path

        check_compare_path(compare, output, overwrite)
    env = dist_env()
    if nproc is not None and nproc > 1 and not env.active:
        build_config(**flags)  # bad options fail here, once, not in every process
        _launch(nproc, max_restarts)
        return
    mode = progress.value
    # under torchrun rank 0 shows the job (all ranks' frames) and its summary
    quiet_rank = quiet or env.rank != 0
    renderer = Renderer(mode, quiet_rank)
    if hasattr(signal, "SIGXFSZ"):
        # beyond a file-size limit a write fails (EFBIG) and the job stops with one line,
        # keeping its finished frames, instead of the process dying
        with contextlib.suppress(ValueError):  # not the main thread (library callers)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        if many:
            _upscale_many(build_config(**flags), expanded, renderer, quiet_rank, env.rank != 0)
            return
        config, summary = _run(renderer, env.rank, **flags)
    except EXPECTED as exc:
        if renderer.mode != "json":
            raise
        # --progress json: the error is one more JSON event on stderr, like the warnings
        message, code = error_line(exc)
        renderer.error(message, code)
        raise typer.Exit(code) from None
    render_summary(summary, renderer.mode, quiet_rank)
    if compare is not None and env.rank == 0:
        from satvsr_cli.engine.compare import write_comparison

        done = write_comparison(config, summary, compare, frame=compare_frame)
        if not quiet:
            what = f"frame {done.first_frame}" if done.kind == "png" else f"{done.frames} frames"
            sys.stderr.write(f"wrote {done.path} (bicubic | satvsr, {what})\n")


def _run(renderer: Renderer, rank: int, **flags: Any) -> tuple[UpscaleConfig, UpscaleSummary]:
    import warnings

    config = build_config(**flags)
    from satvsr_cli.engine.config import ProgressEvent
    from satvsr_cli.engine.run import upscale

    with warnings.catch_warnings():
        if renderer.mode == "json":
            # Python warnings of the libraries become warning events too (one JSON per line)
            def show(message: Warning | str, category: type[Warning], *_a: Any, **_k: Any) -> None:
                renderer(ProgressEvent("warning", message=f"{category.__name__}: {message}"))

            warnings.showwarning = show
        try:
            summary = upscale(config, on_progress=renderer)
        except SatvsrError as exc:
            if getattr(exc, "echoed", False) and rank != 0:  # rank 0 says why and fails
                raise typer.Exit(0) from None
            raise
        finally:
            renderer.stop()
    return config, summary


def _upscale_many(config: UpscaleConfig, inputs: list[str], renderer: Renderer,
                  quiet: bool, quiet_rank: bool) -> None:
    """Several inputs: one output each, a closing table; exit code 7 when some failed."""
    from satvsr_cli.engine.batch import upscale_many
    from satvsr_cli.errors import SomeInputsFailed

    try:
        result = upscale_many(config, inputs, on_progress=renderer)
    except SatvsrError:
        if quiet_rank:  # every rank meets the same problem: rank 0 says it
            raise typer.Exit(0) from None
        raise
    finally:
        renderer.stop()
    if not quiet:
        render_batch(result, renderer.mode)
    failed = result.failed
    if failed and not quiet_rank:  # rank 0 says it (the others leave, so as not to cut it off)
        raise SomeInputsFailed(
            f"{len(failed)} of {len(result.results)} inputs failed (first: {failed[0].input}: "
            f"{failed[0].error})"
        )


def render_batch(result: BatchResult, mode: str) -> None:
    """The closing table of several inputs on stdout (one JSON object with ``--progress json``)."""
    if mode == "none":
        return
    if mode == "json":
        sys.stdout.write(json.dumps({"event": "batch", **result.to_json()}, default=str) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"satvsr upscale: {len(result.results)} inputs, "
                        f"{result.wall_s:.1f} s", title_justify="left")
    for col in ("input", "output", "status", "frames", "time", "rank"):
        table.add_column(col)
    style = {"done": "green", "skipped": "cyan", "failed": "red"}
    for r in result.results:
        status = f"[{style[r.status]}]{r.status}[/]" + (f": {r.error}" if r.error else "")
        frames = str(r.frames) + (f" (+{r.resumed} resumed)" if r.resumed else "")
        table.add_row(r.input, r.output, status, frames, f"{r.wall_s:.1f} s", str(r.rank))
    Console().print(table)


def _launch(nproc: int, max_restarts: int) -> None:
    """``--nproc N``: run this very command in N processes (torchrun's elastic launcher)."""
    from satvsr_cli.engine.distributed import launch_local, strip_option

    argv = strip_option(strip_option(sys.argv[1:], "--nproc"), "--max-restarts")
    code = launch_local(nproc, argv, max_restarts=max_restarts)
    if code:
        raise typer.Exit(code)
