"""Command-line interface: a thin Typer layer. Command modules import torch only inside commands."""

from __future__ import annotations

from satvsr_cli.cli import benchmark as _benchmark  # noqa: F401  (registers commands)
from satvsr_cli.cli import export as _export  # noqa: F401
from satvsr_cli.cli import models as _models  # noqa: F401
from satvsr_cli.cli import probe as _probe  # noqa: F401
from satvsr_cli.cli import train as _train  # noqa: F401
from satvsr_cli.cli import upscale as _upscale  # noqa: F401
from satvsr_cli.cli import weights as _weights  # noqa: F401
from satvsr_cli.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    from satvsr_cli.engine.cpu import keep_freed_memory, prefer_passive_omp

    prefer_passive_omp()  # before torch loads: no OpenMP spinning on shared CPUs (issue 11)
    keep_freed_memory()  # no mmap/munmap churn for every big tensor (issue 11)
    app(prog_name="satvsr")
