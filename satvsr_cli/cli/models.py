"""`satvsr models`: list every registered network with its size, cost and shipped weights."""

from __future__ import annotations

from typing import Annotated

import typer

from satvsr_cli.cli._app import app, guarded


@app.command("models")
@guarded
def models_cmd(
    size: Annotated[
        str, typer.Option(help="LR size WxH at which MACs per output frame are counted.")
    ] = "160x160",
    no_macs: Annotated[bool, typer.Option("--no-macs", help="Skip the MAC count.")] = False,
) -> None:
    """List the registered networks: parameters, frames in, scale, MACs per frame, shipped weights."""
    from rich.console import Console
    from rich.table import Table

    from satvsr_cli.catalog import describe_models
    from satvsr_cli.errors import InputError

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 160x160, got {size!r}") from None
    rows = describe_models(lr_size=(h, w), macs=not no_macs)
    table = Table(title=f"satvsr networks (MACs per output frame at LR {w}×{h})")
    for col in ("name", "family", "params", "frames", "scale", "GMAC/frame", "shipped weights",
                "description"):
        table.add_column(col, justify="right" if col in ("params", "GMAC/frame") else "left",
                         no_wrap=col != "description")
    for r in rows:
        gmac = "-" if r.gmac is None else f"{r.gmac:,.1f}"
        table.add_row(r.name, r.family, f"{r.params:,}", str(r.frames), f"x{r.scale}", gmac,
                      ", ".join(r.weights) or "-", r.description)
    Console().print(table)
