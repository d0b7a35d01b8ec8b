"""`satvsr benchmark` command (thin: parse options, call the library, render)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from satvsr_cli.cli._app import app, guarded
from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.options import Backend

if TYPE_CHECKING:
    from rich.console import Console

    from satvsr_cli.eval import BenchmarkReport, SpeedResult


def _parse_size(text: str) -> tuple[int, int]:
    """``WxH`` → ``(h, w)``."""
    try:
        w_s, h_s = text.lower().replace("×", "x").split("x")
        w, h = int(w_s), int(h_s)
    except ValueError:
        raise InputError(f"--size must look like 160x160 (width x height), got {text!r}") from None
    if w < 1 or h < 1:
        raise InputError(f"--size must be positive, got {text!r}")
    return h, w


def _check_output(path: Path | None, flag: str) -> None:
    """Fail before the run if an output cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise OutputError(f"{path}: {flag} names a folder, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{parent}: folder for {flag} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{parent}: folder for {flag} is not writable")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so no half-written file is left."""
    from satvsr_cli.fsutil import atomic_write_text

    atomic_write_text(path, text)


def _fmt(v: Any, spec: str, none: str = "–") -> str:
    if v is None:
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def _params(n: int | None) -> str:
    if n is None:
        return "–"
    return "0" if n == 0 else f"{n / 1e6:.3f} M"


def _summary_rows(report: BenchmarkReport) -> list[list[str]]:
    rows = []
    for m in report.methods:
        rows.append(
            [
                m.method,
                _fmt(m.psnr, ".3f"),
                _fmt(m.ssim, ".4f"),
                str(m.frames),
                _params(m.params),
                _fmt(m.gmac_per_frame, ".2f"),
                _fmt(m.ms_per_frame, ".1f"),
                _fmt(m.fps_end_to_end, ".2f"),
                _fmt(m.peak_mem_mb, ".0f"),
            ]
            + ([_fmt(m.window_gain_db, "+.3f")] if _ablated(report) else [])
        )
    return rows


def _ablated(report: BenchmarkReport) -> bool:
    return any(m.window_gain_db is not None for m in report.methods)


def _summary_header(report: BenchmarkReport) -> list[str]:
    return SUMMARY_HEADER + (["window gain (dB)"] if _ablated(report) else [])


SUMMARY_HEADER = [
    "method",
    "PSNR (dB)",
    "SSIM",
    "frames",
    "params",
    "GMAC/frame",
    "ms/frame",
    "fps e2e",
    "peak MB",
]
CLIP_HEADER = ["method", "clip", "frames", "LR size", "PSNR (dB)", "SSIM"]


def _clip_rows(report: BenchmarkReport) -> list[list[str]]:
    return [
        [
            m.method,
            c.clip,
            str(c.frames),
            f"{c.lr_size[1]}×{c.lr_size[0]}",
            _fmt(c.psnr, ".3f"),
            _fmt(c.ssim, ".4f"),
        ]
        for m in report.methods
        for c in m.clips
    ]


def _settings_line(report: BenchmarkReport) -> str:
    s = report.settings
    crop = s["crop_border"]
    return (
        f"{s['channel'].upper()}, crop {crop}, data range {s['data_range']:g}, "
        f"padding {s['temporal_padding']}, LR: {s['lr_source']}"
        f"{', coded ' + s['lr_codec'].split(':')[0] if s.get('lr_codec') else ''}, "
        f"device {s['device']} ({s['device_name']}), {s['precision']}"
    )


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _render(report: BenchmarkReport, out: Console, markdown: bool) -> None:
    from rich.table import Table

    if markdown:
        # soft_wrap: long rows stay one line (a wrapped row is no Markdown)
        out.print(_markdown(CLIP_HEADER, _clip_rows(report)), markup=False, highlight=False,
                  soft_wrap=True)
        out.print()
        out.print(_markdown(_summary_header(report), _summary_rows(report)), markup=False,
                  highlight=False, soft_wrap=True)
        out.print()
        out.print(_settings_line(report), markup=False, highlight=False)
        return
    per_clip = Table(title="Per clip", title_justify="left")
    for i, h in enumerate(CLIP_HEADER):
        per_clip.add_column(h, justify="left" if i < 2 else "right")
    for r in _clip_rows(report):
        per_clip.add_row(*r)
    out.print(per_clip)
    summary = Table(title="Summary (mean over clips)", title_justify="left")
    for i, h in enumerate(_summary_header(report)):
        summary.add_column(h, justify="left" if i == 0 else "right")
    for r in _summary_rows(report):
        summary.add_row(*r)
    out.print(summary)
    out.print(_settings_line(report), markup=False, highlight=False)


def _csv(report: BenchmarkReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "method",
            "clip",
            "frames",
            "psnr",
            "ssim",
            "params",
            "gmac_per_frame",
            "ms_per_frame",
            "fps_end_to_end",
            "peak_mem_mb",
        ]
    )
    for m in report.methods:
        for c in m.clips:
            w.writerow(
                [m.method, c.clip, c.frames, c.psnr, c.ssim, "", c.gmac_per_frame or "", "", "", ""]
            )
        w.writerow(
            [
                m.method,
                "ALL",
                m.frames,
                m.psnr,
                m.ssim,
                "" if m.params is None else m.params,
                m.gmac_per_frame or "",
                m.ms_per_frame or "",
                m.fps_end_to_end or "",
                m.peak_mem_mb or "",
            ]
        )
    return buf.getvalue()


SPEED_HEADER = [
    "method",
    "LR size",
    "frames",
    "engine fps",
    "reference fps",
    "speed-up",
    "max |diff| [0,1]",
    "GMAC full fwd",
    "GMAC engine/frame",
    "engine GFLOP/s",
    "reference GFLOP/s",
    "matmul peak GFLOP/s",
]


def _speed_rows(results: list[SpeedResult]) -> list[list[str]]:
    rows = []
    for r in results:
        peak = r.matmul_peak_gflops

        def pct(g: float | None, peak: float = peak) -> str:
            return "–" if g is None else f"{g:.1f} ({100 * g / peak:.0f}%)"

        rows.append(
            [
                r.method,
                f"{r.lr_size[1]}×{r.lr_size[0]}",
                str(r.frames),
                f"{r.engine_fps:.3f}",
                f"{r.reference_fps:.3f}",
                f"{r.speedup:.2f}×",
                f"{r.max_abs_diff:.2e}",
                _fmt(r.gmac_full_forward, ".2f"),
                _fmt(r.gmac_engine_per_frame, ".2f"),
                pct(r.engine_gflops),
                pct(r.reference_gflops),
                f"{peak:.1f} (n={r.matmul_size})",
            ]
        )
    return rows


def _render_speed(results: list[SpeedResult], out: Console, markdown: bool = False) -> None:
    from rich.table import Table

    title = "Speed: engine vs reference (one full forward per window, batch 1, fp32)"
    rows = _speed_rows(results)
    if markdown:
        out.print(_markdown(SPEED_HEADER, rows), markup=False, highlight=False, soft_wrap=True)
        out.print()
    else:
        t = Table(title=title, title_justify="left")
        for h in SPEED_HEADER:
            t.add_column(h, justify="left" if h == "method" else "right")
        for row in rows:
            t.add_row(*row)
        out.print(t)
    if results:
        r = results[0]
        out.print(
            f"device {r.device} ({r.device_name}), engine {r.precision}, batch {r.batch_size}, "
            f"best of {r.repeats}; "
            f"engine: {r.engine}",
            markup=False,
            highlight=False,
        )
    for r in results:  # issue 11: bf16 roof, the precision rule, the recorded PSNR change
        extra = []
        if r.bf16_matmul_peak_gflops:
            g = r.engine_gflops
            extra.append(f"bf16 matmul peak {r.bf16_matmul_peak_gflops:.1f} GFLOP/s"
                         + (f" (engine {100 * g / r.bf16_matmul_peak_gflops:.0f}%)" if g else ""))
        if r.precision_reason:
            extra.append(f"precision {r.precision}: {r.precision_reason}")
        if r.psnr_change_db:
            extra.append("PSNR change of bf16 (manifest): " + ", ".join(
                f"{k} {v:+.3f} dB" for k, v in r.psnr_change_db.items()))
        if extra:
            out.print(f"{r.method}: " + "; ".join(extra), markup=False, highlight=False)


@app.command()
@guarded
def benchmark(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Jilin-189 style folder: DIR/{GT,LR4x}/<clip>/<frame>.png "
            "(or DIR/eval/..., DIR/test_set/...).",
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Network name (repeatable); uses its shipped weights."),
    ] = None,
    weights: Annotated[
        list[Path] | None,
        typer.Option("--weights", "-w", help="Weights file (.safetensors + manifest; repeatable)."),
    ] = None,
    allow_random: Annotated[
        bool,
        typer.Option(
            "--allow-random",
            help="Allow --model without shipped weights "
            "(an untrained network, labelled '(random init)').",
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write settings, per-clip results and summary.")
    ] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write a CSV table.")] = None,
    compare_png: Annotated[
        Path | None,
        typer.Option(
            "--compare-png",
            help="Write a comparison picture of one frame of the first clip: LR (nearest x4) | "
            "bicubic | each network | GT, with each panel's PSNR.",
        ),
    ] = None,
    compare_frame: Annotated[
        int | None,
        typer.Option(
            "--compare-frame",
            min=0,
            help="Frame (0-based) for --compare-png. Default: the middle scored frame.",
        ),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown tables instead of rich tables.")
    ] = False,
    y_channel: Annotated[
        bool, typer.Option("--y-channel", help="Score BT.601 Y (MATLAB rgb2ycbcr), not RGB.")
    ] = False,
    crop_border: Annotated[
        int, typer.Option("--crop-border", min=0, help="HR pixels cropped on every side.")
    ] = 0,
    quantize: Annotated[
        bool, typer.Option("--quantize", help="Clamp and round network output to uint8 first.")
    ] = False,
    temporal_padding: Annotated[
        str,
        typer.Option(
            "--temporal-padding", help="Clip ends: centre (papers), reflect or replicate."
        ),
    ] = "centre",
    lr_from_gt: Annotated[
        bool,
        typer.Option(
            "--lr-from-gt",
            help="Make LR from GT with MATLAB-exact imresize(GT, 1/4) even when LR4x exists.",
        ),
    ] = False,
    max_frames: Annotated[
        int | None,
        typer.Option("--max-frames", min=1, help="Score only the first N frames of each clip."),
    ] = None,
    lr_codec: Annotated[
        str | None,
        typer.Option(
            "--lr-codec", metavar="CODEC:CRF",
            help="Code each LR clip as a user's mp4 first (h264:23 = libx264 -crf 23 -preset "
            "medium -pix_fmt yuv420p; h265:CRF), for every method, bicubic included.",
        ),
    ] = None,
    ablate_window: Annotated[
        bool,
        typer.Option(
            "--ablate-window",
            help="Also score each network with five copies of the centre frame and report "
            "the temporal contribution (window gain, dB).",
        ),
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="fp32, bf16 or fp16 (networks; default fp32). Speed mode: also auto "
            "(the default there: the precision rule of `satvsr upscale`).",
        ),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="Speed mode on CPU: the engine's backend, auto, torch or openvino "
            "(as `satvsr upscale`).",
        ),
    ] = Backend.auto,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads (default: physical cores)."),
    ] = None,
    tile: Annotated[
        str,
        typer.Option(
            "--tile", help="Speed mode: the engine's tile, auto (as `satvsr upscale`), 0 "
            "(whole frame) or N LR pixels."
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Windows per forward (default 1; 4 in speed mode)."
        ),
    ] = None,
    speed: Annotated[
        bool,
        typer.Option(
            "--speed",
            help="Speed mode: engine vs reference forward, GFLOP/s vs "
            "a matmul peak, on synthetic input (no --data needed).",
        ),
    ] = False,
    size: Annotated[str, typer.Option("--size", help="Speed mode: LR size WxH.")] = "160x160",
    frames: Annotated[
        int, typer.Option("--frames", min=1, help="Speed mode: output frames timed.")
    ] = 10,
    repeats: Annotated[
        int,
        typer.Option("--repeats", min=1, help="Speed mode: timed runs per path (best kept)."),
    ] = 1,
) -> None:
    """Measure PSNR/SSIM, speed and memory of bicubic and networks on a test set.

    The default protocol is the MSDTGP/LGTD papers': RGB, full frame, unclamped float output,
    centre-frame replacement at clip ends, mean per clip then over clips. PSNR of identical
    frames is reported as inf.
    """
    from rich.console import Console

    out = Console()
    if not out.is_terminal:  # piped or captured: do not squeeze the tables into 80 columns
        out = Console(width=160)
    err = Console(stderr=True)
    _check_output(json_out, "--json")
    _check_output(csv_out, "--csv")
    _check_output(compare_png, "--compare-png")
    if compare_png is not None and compare_png.suffix.lower() != ".png":
        raise OutputError(f"{compare_png}: --compare-png writes a .png file")
    if compare_frame is not None and compare_png is None:
        raise InputError("--compare-frame needs --compare-png")
    models = list(model or [])
    weight_files = list(weights or [])
    if threads is not None or speed:
        from satvsr_cli.engine.cpu import set_threads

        set_threads(threads)
    if speed:
        if compare_png is not None:
            raise InputError("--compare-png needs --data (speed mode has no ground truth)")
        engine_opts = {"backend": str(backend), "threads": threads, "tile": _speed_tile(tile)}
        _run_speed(
            models,
            weight_files,
            allow_random,
            device,
            precision or "auto",
            batch_size or 4,
            size,
            frames,
            repeats,
            json_out,
            out,
            err,
            markdown,
            engine_opts,
        )
        return
    if data is None:
        raise InputError("--data DIR is required (or use --speed)")

    from satvsr_cli.eval import evaluate

    status = err.status("benchmark: starting", spinner="dots")
    status.start()

    def on_frame(method: str, clip: str, done: int, total: int) -> None:
        status.update(f"benchmark: {method} · clip {clip} · frame {done}/{total}")

    try:
        report = evaluate(
            data,
            models=models,
            weights=weight_files,
            allow_random=allow_random,
            device=device,
            precision=precision or "fp32",
            y_channel=y_channel,
            crop_border=crop_border,
            temporal_padding=temporal_padding,
            lr_from_gt=lr_from_gt,
            max_frames=max_frames,
            quantize=quantize,
            batch_size=batch_size or 1,
            progress=on_frame,
            lr_codec=lr_codec,
            ablate_window=ablate_window,
            compare_png=compare_png,
            compare_frame=compare_frame,
        )
    finally:
        status.stop()
    _render(report, out, markdown)
    if json_out is not None:
        _write_atomic(json_out, json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
        err.print(f"wrote {json_out}", markup=False, highlight=False)
    if csv_out is not None:
        _write_atomic(csv_out, _csv(report))
        err.print(f"wrote {csv_out}", markup=False, highlight=False)
    if compare_png is not None:
        err.print(f"wrote {compare_png}", markup=False, highlight=False)


def _speed_tile(text: str) -> int | str:
    """``--tile`` of speed mode: ``"auto"``, or LR pixels (0: whole frame)."""
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    if t in ("0", "none"):
        return 0
    if not t.isdigit():
        raise InputError(f"--tile must be auto, 0 or a number of LR pixels, got {text!r}")
    return int(t)


def _run_speed(
    models: list[str],
    weight_files: list[Path],
    allow_random: bool,
    device: str,
    precision: str,
    batch_size: int,
    size: str,
    frames: int,
    repeats: int,
    json_out: Path | None,
    out: Console,
    err: Console,
    markdown: bool = False,
    engine_opts: dict[str, Any] | None = None,
) -> None:
    """Speed mode: one row per requested network."""
    lr_size = _parse_size(size)
    from satvsr_cli.eval import resolve_device, speed_compare, unique_labels, weights_source
    from satvsr_cli.weights import resolve_model

    dev = resolve_device(device)
    requests: list[tuple[str | None, Path | None]] = [(m, None) for m in models]
    requests += [(None, w) for w in weight_files]
    if not requests:
        requests = [(None, None)]  # the default shipped weights
    loaded = [resolve_model(m, w, dev, allow_random=allow_random) for m, w in requests]
    labels = unique_labels(
        [label for _, label, _ in loaded],
        [weights_source(lm, w) for lm, (_, w) in zip(loaded, requests, strict=True)],
    )
    results = []
    for (net, _, sha), label in zip(loaded, labels, strict=True):
        with err.status(f"speed: {label}", spinner="dots"):
            results.append(
                speed_compare(
                    net,
                    name=label,
                    weights_sha256=sha,
                    lr_size=lr_size,
                    frames=frames,
                    device=dev,
                    precision=precision,
                    batch_size=batch_size,
                    repeats=repeats,
                    **(engine_opts or {}),
                )
            )
    _render_speed(results, out, markdown)
    if json_out is not None:
        payload = {"speed": [r.to_json() for r in results]}
        _write_atomic(json_out, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        err.print(f"wrote {json_out}", markup=False, highlight=False)
