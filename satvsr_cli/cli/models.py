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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list (one object per network) instead.")
    ] = False,
) -> None:
    """List the registered networks: parameters, frames in, scale, MACs per frame, shipped weights."""
    import dataclasses
    import json

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from satvsr_cli.catalog import describe_models
    from satvsr_cli.errors import InputError

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 160x160, got {size!r}") from None
    rows = describe_models(lr_size=(h, w), macs=not no_macs)
    if as_json:
        out = [{**dataclasses.asdict(r), "weights": list(r.weights), "lr_size": [w, h]}
               for r in rows]
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console()
    table = Table(title=f"satvsr networks (MACs per output frame at LR {w}×{h})",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    cells = [
        (r.name, r.family, f"{r.params:,}", str(r.frames), f"x{r.scale}",
         "-" if r.gmac is None else f"{r.gmac:,.1f}", "\n".join(r.weights) or "-", r.description)
        for r in rows
    ]
    heads = ("name", "family", "params", "frames", "scale", "GMAC", "shipped weights")
    # names and numbers are never cut: each column is as wide as its longest cell; the
    # description gets the rest of the line, or its own lines below when too little is left;
    # several shipped weights of one network go one per line
    widths = [max(len(col), *(len(line) for c in cells for line in c[i].splitlines()))
              for i, col in enumerate(heads)]
    if not console.is_terminal:  # piped: whole lines, as wide as the table needs
        full = sum(widths) + 3 * (len(widths) + 1) + max(len(c[-1]) for c in cells)
        console = Console(width=max(console.width, full))
    inline = console.width - (sum(widths) + 3 * len(widths)) >= 32
    for col, width in zip(heads, widths, strict=True):
        table.add_column(col, justify="right" if col in ("params", "GMAC") else "left",
                         no_wrap=True, min_width=width)
    if inline:
        table.add_column("description", overflow="fold")
    for c in cells:
        table.add_row(*(c if inline else c[:-1]))
    console.print(table)
    if not inline:
        for c in cells:
            console.print(f"{c[0]}: {c[-1]}", highlight=False)
