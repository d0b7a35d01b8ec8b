"""The Typer application object and the error guard shared by every command module."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from satvsr_cli.errors import SatvsrError, exit_code_for

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="satvsr",
    help="Satellite video super-resolution (x4) with MSDTGP and LGTD.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` as one line on stderr and return the Exit to raise."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SatvsrError as exc:
            raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                       exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            raise fail(f"{exc.strerror or exc}: {exc.filename}", 2) from None
        except MemoryError as exc:
            raise fail("out of memory; try a smaller --tile", exit_code_for(exc)) from None

    return wrapper
