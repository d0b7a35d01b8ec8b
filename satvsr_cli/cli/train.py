"""`satvsr train` command (thin: parse options, call the library, render)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from satvsr_cli.cli._app import app, guarded

_DATA_HELP = (
    "Training source, repeatable: a Jilin-layout folder (GT/ [+ LR4x/]) or still images / "
    "GeoTIFFs (folder, glob or file) turned into synthetic clips. Options after commas: "
    "kind=jilin|images, weight=W, gsd=F, bands=3:2:1, stretch=auto|range|percentile, e.g. "
    "'images/ucmerced,gsd=3,weight=0.5'."
)


@app.command("train")
@guarded
def train_cmd(
    data: Annotated[list[str] | None, typer.Option("--data", help=_DATA_HELP)] = None,
    model: Annotated[str | None, typer.Option(help="Network name (see `satvsr models`).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder \\[default: runs/MODEL].")
    ] = None,
    iters: Annotated[
        int | None, typer.Option(help="Total iterations of the run (also to extend a resumed one).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")
    ] = False,
    resume_from: Annotated[
        Path | None, typer.Option(help="Continue from this checkpoint file (implies --resume).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Config file (.toml, .json or .yaml) over the recipe.")
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(help="Preset: msdtgp | lgtd (the papers' settings) | cpu (small presets) "
                          "\\[default: the model's paper recipe, else cpu]."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any config key, repeatable: --set train.lr=2e-4."),
    ] = None,
    val_data: Annotated[
        list[str] | None,
        typer.Option("--val-data", help="Jilin-layout root scored during training, repeatable."),
    ] = None,
    val_every: Annotated[int | None, typer.Option(help="Validate every N iterations.")] = None,
    val_max_frames: Annotated[
        int | None, typer.Option(help="Score only the first N frames of each validation clip.")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Batch size per process.")] = None,
    patch: Annotated[int | None, typer.Option(help="LR patch side (GT patch is 4×).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed \\[recipe: 123].")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    amp: Annotated[str | None, typer.Option(help="none | bf16 | fp16 (CUDA only).")] = None,
    ema: Annotated[float | None, typer.Option(help="EMA decay (0 = off).")] = None,
    loss: Annotated[str | None, typer.Option(help="l1 | charbonnier.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads (0 = one per core).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Data worker processes (0 = in the training process).")
    ] = None,
    synth_gsd_factor: Annotated[
        float | None,
        typer.Option(help="Downsample still images by this before synthesising clips "
                          "(3 for UC Merced 0.3 m → ~1 m)."),
    ] = None,
    synth_bands: Annotated[
        str | None, typer.Option(help="GeoTIFF bands for RGB, 1-based, e.g. 3,2,1.")
    ] = None,
    synth_stretch: Annotated[
        str | None, typer.Option(help="auto | range | percentile (non-uint8 stills to uint8).")
    ] = None,
    deterministic: Annotated[
        bool | None,
        typer.Option("--deterministic/--no-deterministic",
                     help="Deterministic algorithms (bit-exact resume on CPU)."),
    ] = None,
    log_every: Annotated[int | None, typer.Option(help="Log every N iterations.")] = None,
    ckpt_every: Annotated[int | None, typer.Option(help="Checkpoint every N iterations.")] = None,
    keep_last: Annotated[int | None, typer.Option(help="Checkpoints kept besides best.pt.")] = None,
    export: Annotated[
        str | None, typer.Option(help="Weights exported at the end: final | best.")
    ] = None,
    init: Annotated[
        str | None,
        typer.Option("--init", help="Fine-tune from these weights: a shipped id (lgtd_small.v1), "
                                    "a .safetensors file or one made by `satvsr weights import`. "
                                    "Its network gives --model when that is not given."),
    ] = None,
    export_only: Annotated[
        bool, typer.Option("--export-only", help="Only export the run in --out, then exit.")
    ] = False,
) -> None:
    """Train a network; checkpoints, logs and exported weights go to the run folder.

    Ctrl-C saves a checkpoint and exits with 130; add --resume to the same command to go on.
    Under `torchrun --nproc_per_node N` it trains with DDP (rank from the environment).
    """
    from rich.console import Console

    from satvsr_cli.errors import InputError

    err = Console(stderr=True)
    if init is not None and model is None and not (resume or resume_from):
        from satvsr_cli.weights import read_manifest

        model = read_manifest(init).network
    run_dir = out if out is not None else (Path("runs") / model if model else None)
    if export_only:
        if run_dir is None:
            raise InputError("--export-only needs --out RUN_DIR")
        from satvsr_cli.train.loop import export_run

        path = export_run(run_dir, which=export or "final", log=lambda s: err.print(s))
        typer.echo(str(path))
        return
    if run_dir is None:
        if not (resume or resume_from):
            raise InputError("pass --model NAME (and --data DIR), or --out RUN_DIR --resume")
        raise InputError("--resume needs --out RUN_DIR (or --model to use runs/MODEL)")

    overrides: dict[str, Any] = {}
    flags: list[tuple[str, Any]] = [
        ("data.sources", data or None), ("data.val", val_data or None),
        ("train.iters", iters), ("train.val_every", val_every),
        ("train.val_max_frames", val_max_frames), ("train.batch", batch),
        ("data.patch", patch), ("train.lr", lr), ("train.seed", seed), ("train.device", device),
        ("train.amp", amp), ("train.ema", ema), ("train.loss", loss),
        ("data.num_workers", workers), ("train.threads", threads),
        ("synth.gsd_factor", synth_gsd_factor),
        ("synth.bands", synth_bands), ("synth.stretch", synth_stretch),
        ("train.deterministic", deterministic), ("train.log_every", log_every),
        ("train.ckpt_every", ckpt_every), ("train.keep_last", keep_last),
        ("train.export", export), ("train.init", init),
    ]
    for key, value in flags:
        if value is not None:
            overrides[key] = list(value) if isinstance(value, list) else value

    from satvsr_cli.train.loop import prepare

    trainer = prepare(
        run_dir, model=model, recipe_name=recipe, config_file=config, overrides=overrides,
        sets=set_ or [], resume=resume_from or resume or None,
        log=lambda s: err.print(s, highlight=False), argv=sys.argv,
    )
    progress = _attach_progress(trainer, err)
    try:
        result = trainer.fit()
    finally:
        progress.stop()
    if trainer.dist.main:
        ips = f"{result.it_per_s:.3f} it/s" if result.it_per_s else "-"
        typer.echo(f"run: {result.run_dir}")
        typer.echo(f"iterations: {result.iterations}  wall time: {result.wall_time_s:.0f} s  "
                   f"training speed: {ips}")
        for label, m in result.metrics.items():
            typer.echo(f"validation {label}: {m['psnr']:.3f} dB / {m['ssim']:.4f}")
        if result.export is not None:
            typer.echo(f"weights: {result.export}")


def _attach_progress(trainer: Any, err: Any) -> Any:
    """A Rich progress bar (stderr) and a log line every ``log_every`` iterations."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}"), console=err, transient=True,
    )
    task: dict[str, Any] = {}

    def on_start(_: Any, info: dict[str, Any]) -> None:
        progress.start()
        task["id"] = progress.add_task("", total=info["iters"], completed=info["iter"])

    def on_iter(_: Any, info: dict[str, Any]) -> None:
        eta = info.get("eta_s")
        eta_s = "-" if eta is None else _hms(eta)
        progress.update(task["id"], completed=info["iter"], description=(
            f"loss {info['loss']:.4f}  lr {info['lr']:.2e}  {info['it_per_s']:.2f} it/s  "
            f"ETA {eta_s}"))

    def on_log(_: Any, row: dict[str, Any]) -> None:
        progress.console.print(
            f"it {row['iter']}  epoch {row['epoch']:.2f}  loss {row['loss']:.5f}  "
            f"lr {row['lr']:.2e}  {row['it_per_s']:.2f} it/s", highlight=False)

    def on_end(_: Any, __: dict[str, Any]) -> None:
        progress.stop()

    trainer.add_callback("on_start", on_start)
    trainer.add_callback("on_iter_end", on_iter)
    trainer.add_callback("on_log", on_log)
    trainer.add_callback("on_end", on_end)
    return progress


def _hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
