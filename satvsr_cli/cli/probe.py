"""`satvsr probe` command: describe an input and the planned upscale without running a network."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from satvsr_cli.cli._app import app, fail, guarded
from satvsr_cli.cli.upscale import (
    COMPUTE_PANEL,
    IO_PANEL,
    MODEL_PANEL,
    VALUES_PANEL,
    build_config,
)
from satvsr_cli.options import InputType, Precision


def full_number(v: float) -> str:
    """``v`` at full precision (the shortest text that reads back as the same float; no exponent
    for whole numbers): map coordinates keep their metres, unlike ``%g``."""
    f = float(v)
    if f.is_integer() and abs(f) < 1e16:
        return str(int(f))
    return repr(f)


@app.command("probe")
@guarded
def probe_cmd(
    input: Annotated[str, typer.Argument(
        help="Video file, folder or glob of frames or GeoTIFFs, or one GeoTIFF.",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", rich_help_panel=IO_PANEL, help="The output `upscale` would write.")] = None,
    input_type: Annotated[InputType, typer.Option(
        rich_help_panel=IO_PANEL, help="Override the detected input type.")] = InputType.auto,
    start: Annotated[int, typer.Option(rich_help_panel=IO_PANEL, min=0)] = 0,
    end: Annotated[int | None, typer.Option(rich_help_panel=IO_PANEL, min=1)] = None,
    window: Annotated[str | None, typer.Option(
        rich_help_panel=IO_PANEL, help="X,Y,W,H: plan for this part of every frame.")] = None,
    independent: Annotated[bool, typer.Option(
        "--independent", rich_help_panel=IO_PANEL,
        help="Plan for every frame upscaled alone.")] = False,
    model: Annotated[str | None, typer.Option(
        "-m", "--model", rich_help_panel=MODEL_PANEL, help="Network name.")] = None,
    weights: Annotated[Path | None, typer.Option(
        "-w", "--weights", rich_help_panel=MODEL_PANEL, help="Weights file.")] = None,
    device: Annotated[str, typer.Option(rich_help_panel=COMPUTE_PANEL)] = "auto",
    precision: Annotated[Precision, typer.Option(
        rich_help_panel=COMPUTE_PANEL)] = Precision.auto,
    tile: Annotated[str, typer.Option(rich_help_panel=COMPUTE_PANEL,
                                      help="auto, 0, N or HxW (LR pixels).")] = "auto",
    tile_overlap: Annotated[int | None, typer.Option(rich_help_panel=COMPUTE_PANEL, min=0)] = None,
    batch: Annotated[str, typer.Option(rich_help_panel=COMPUTE_PANEL)] = "auto",
    max_memory: Annotated[str | None, typer.Option(rich_help_panel=COMPUTE_PANEL)] = None,
    value_range: Annotated[str | None, typer.Option(rich_help_panel=VALUES_PANEL)] = None,
    bands: Annotated[str | None, typer.Option(rich_help_panel=VALUES_PANEL)] = None,
    bands_per_frame: Annotated[int | None, typer.Option(rich_help_panel=VALUES_PANEL, min=1)] = None,
    codec: Annotated[str | None, typer.Option(
        rich_help_panel=IO_PANEL,
        help="Video encoder upscale would use (default: libx264, libx265 beyond H.264's "
             "limits).")] = None,
    pix_fmt: Annotated[str | None, typer.Option(rich_help_panel=IO_PANEL)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Describe an input and the planned upscale, without running a network.

    Frames, fps, size, bit depth, bands, CRS/transform/nodata, audio, the tile plan, a memory
    estimate and the output size.
    """
    from satvsr_cli.engine.memory import format_bytes
    from satvsr_cli.engine.probe import probe

    config = build_config(
        input=input, output=output, input_type=input_type, model=model, weights=weights,
        start=start, end=end, window=window, independent=independent, device=device,
        precision=precision, tile=tile,
        tile_overlap=tile_overlap, batch=batch, max_memory=max_memory, value_range=value_range,
        bands=bands, bands_per_frame=bands_per_frame, codec=codec, pix_fmt=pix_fmt,
    )
    report = probe(config)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), default=str, indent=1) + "\n")
        _exit_if_not_runnable(report.problems)
        return
    from rich.console import Console
    from rich.table import Table

    info = report.info
    t = Table(title=f"satvsr probe: {info.spec}", show_header=False, title_justify="left")
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    frames = "?" if info.n_frames is None else f"{'' if info.n_frames_exact else '≈'}{info.n_frames}"
    t.add_row("input", info.kind)
    t.add_row("frames", frames)
    if info.fps is not None:
        t.add_row("fps", f"{info.fps} ({float(info.fps):.3f})" + ("  VFR?" if info.vfr else ""))
    t.add_row("size", f"{info.width} x {info.height}")
    t.add_row("bands / dtype", f"{info.bands} x {info.dtype}"
              + (f", {info.bit_depth}-bit" if info.bit_depth else ""))
    if info.codec:
        t.add_row("codec", f"{info.codec} {info.pix_fmt or ''}".strip())
    if info.kind == "video":
        t.add_row("audio", info.audio_codec or "none")
        if info.rotation:
            t.add_row("rotation", f"{info.rotation}° (delivered upright)")
    geo = info.geo
    if geo is not None:
        from satvsr_cli.engine.probe import crs_label

        t.add_row("CRS", crs_label(geo.crs_wkt))
        t.add_row("transform", ", ".join(full_number(v) for v in list(geo.transform)[:6]))
        t.add_row("nodata", "none" if geo.nodata is None else full_number(geo.nodata))
        if geo.gcps:
            t.add_row("GCPs", str(len(geo.gcps)))
        if geo.rpcs:
            t.add_row("RPCs", "yes")
    t.add_row("value range", report.value_range.describe()
              if report.value_range else f"[yellow]{report.value_range_note}[/yellow]")
    t.add_row("bands plan", report.bands or "-")
    t.add_row("network", f"{report.weights or report.model or '?'} (size multiple "
              f"{report.size_multiple})"
              + (f", {report.weights_choice}" if report.weights_choice else ""))
    t.add_row("device", f"{report.device}, {report.precision}")
    t.add_row("tiles", f"{report.tile[0]}x{report.tile[1]} LR px, grid {report.grid[0]}x"
              f"{report.grid[1]}, overlap {report.overlap}, batch {report.batch}")
    t.add_row("memory estimate", format_bytes(report.memory.get("total")) + "  (" + ", ".join(
        f"{k} {format_bytes(v)}" for k, v in report.memory.items() if k != "total") + ")")
    out_frames = "?" if report.output_frames is None else str(report.output_frames)
    t.add_row("output", f"{report.output} ({report.output_kind})")
    t.add_row("output size", f"{report.output_size[0]} x {report.output_size[1]}, {out_frames} "
              f"frames, {format_bytes(report.output_bytes_per_frame)}/frame uncompressed")
    if report.video_codec:
        t.add_row("video encoder", f"{report.video_codec} {report.video_pix_fmt or ''}".strip())
    for note in report.notes:
        t.add_row("note", f"[yellow]{note}[/yellow]")
    for _code, problem in report.problems:
        if problem not in report.notes:
            t.add_row("cannot run", f"[red]{problem}[/red]")
    Console().print(t)
    _exit_if_not_runnable(report.problems)


def _exit_if_not_runnable(problems: tuple[tuple[int, str], ...]) -> None:
    """``upscale`` could not run this plan: exit with the first problem's code and reason."""
    if problems:
        code, message = problems[0]
        more = f" (+{len(problems) - 1} more problem(s) above)" if len(problems) > 1 else ""
        raise fail(f"the planned upscale cannot run: {message}{more}", code)
