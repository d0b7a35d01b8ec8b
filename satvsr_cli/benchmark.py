"""The evaluation code under its earlier name (``satvsr_cli.benchmark.evaluate`` …): every name
is looked up in :mod:`satvsr_cli.eval`, where the code lives (protocol, run, report, speed,
runtime). New code imports :mod:`satvsr_cli.eval`."""

from __future__ import annotations

from typing import Any

from satvsr_cli import eval as _eval

__all__ = list(_eval.__all__)


def __getattr__(name: str) -> Any:
    if name in _eval.__all__:
        return getattr(_eval, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
