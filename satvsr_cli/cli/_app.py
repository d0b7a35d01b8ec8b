"""The Typer application object and the error guard shared by every command module."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
import typer.core

from satvsr_cli import __version__
from satvsr_cli.errors import SatvsrError, exit_code_for

P = ParamSpec("P")
R = TypeVar("R")

#: ``-h`` works as ``--help`` on every command (click passes this to the sub-commands' contexts).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="satvsr",
    help="Satellite video super-resolution (x4) with MSDTGP and LGTD.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, pwsh)
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings=CONTEXT_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"satvsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """Satellite video super-resolution (x4) with MSDTGP and LGTD."""


def _hide_flag_types() -> None:
    """Show no ``<bool>`` type beside on/off flags in the Rich help (Typer prints one for every
    option); options that take a value keep their type."""
    option = getattr(typer.core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if option is None or original is None or getattr(original, "_satvsr", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None
        result: str | None = original(self, ctx)
        return result

    display_type_rich._satvsr = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_hide_flag_types()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` as one line on stderr and return the Exit to raise."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


#: The exceptions :func:`guarded` turns into one line (see :func:`error_line`).
EXPECTED = (SatvsrError, KeyboardInterrupt, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError, MemoryError)


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of an expected failure (see :data:`EXPECTED`)."""
    if isinstance(exc, SatvsrError):
        return (str(exc).splitlines()[0] if str(exc) else type(exc).__name__), exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller --tile", exit_code_for(exc)
    assert isinstance(exc, OSError)
    return f"{exc.strerror or exc}: {exc.filename}", 2


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            message, code = error_line(exc)
            raise fail(message, code) from None

    return wrapper
