"""`satvsr benchmark` command (thin: parse options, call the library, render)."""

from __future__ import annotations

from satvsr_cli.cli._app import app, guarded  # noqa: F401
