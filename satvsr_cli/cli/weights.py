"""`satvsr weights`: list the shipped weights, import the authors' checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from satvsr_cli.cli._app import app, guarded

weights_app = typer.Typer(
    name="weights",
    help="Shipped weights and imports of upstream checkpoints.",
    no_args_is_help=True,
)
app.add_typer(weights_app)


@weights_app.command("list")
@guarded
def list_cmd() -> None:
    """List the shipped weights: id, network, sha256 (the defaults are marked: DEFAULT, and
    DEFAULT_LOSSY for lossy-coded input when shipped)."""
    from satvsr_cli.weights import default_weights, read_manifest, shipped_weights, weights_id

    default = default_weights()
    lossy = default_weights(lossy=True)
    for p in shipped_weights():
        m = read_manifest(p)
        marks = (["default"] if p == default else []) + (
            ["default for lossy input"] if p == lossy and lossy != default else [])
        mark = f"  ({', '.join(marks)})" if marks else ""
        typer.echo(f"{weights_id(p)}\t{m.network}\t{m.sha256[:12]}{mark}")


@weights_app.command("import")
@guarded
def import_cmd(
    source: Annotated[Path, typer.Argument(help="The upstream checkpoint (.pth state dict).")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="The network it was trained as, e.g. msdtgp.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The .safetensors to write (manifest beside it).")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
) -> None:
    """Convert an upstream checkpoint (e.g. MSDTGP's epoch-46 release) to satvsr weights.

    The file is read with torch.load(weights_only=True): no code is unpickled.
    DataParallel `module.` prefixes are stripped and upstream names mapped; every tensor must fit.
    The manifest beside OUT names the source file and its sha256.
    """
    from satvsr_cli.weights_import import import_checkpoint

    path = import_checkpoint(source, model, out, overwrite=overwrite)
    typer.echo(str(path))
