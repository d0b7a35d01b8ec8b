"""Errors that the CLI turns into one clear line on stderr and a non-zero exit code.

The exit codes, in one table (:data:`EXIT_CODES`, documented in the README):

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     any other user-facing error (:class:`SatvsrError`)
2     bad input or option value (:class:`InputError`, :class:`OptionError`,
      :class:`DeviceError`), a missing or unreadable file
3     the output cannot be written (:class:`OutputError`), e.g. it exists without --overwrite
4     weights missing, corrupt or not matching the network (:class:`WeightsError`)
5     unknown network or invalid network configuration (:class:`ModelError`)
6     out of memory even at the smallest tile (:class:`OutOfMemory`, or a raw ``MemoryError``)
7     several inputs: some of them failed, the others were written (:class:`SomeInputsFailed`)
130   interrupted (Ctrl-C or SIGTERM; :class:`Interrupted`), progress saved where supported
====  ==========================================================================================
"""

from __future__ import annotations

#: Exit code → meaning (see the module docstring; the README repeats it).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "other error",
    2: "bad input, option value or device",
    3: "output cannot be written",
    4: "weights missing, corrupt or not matching",
    5: "unknown network or invalid network configuration",
    6: "out of memory",
    7: "some inputs failed (several inputs)",
    130: "interrupted",
}


class SatvsrError(Exception):
    """Base class: a problem the user can fix. The message is one line, shown as is."""

    exit_code: int = 1


class InputError(SatvsrError):
    """The input (video, frames, GeoTIFFs, dataset) is missing, unreadable or inconsistent."""

    exit_code = 2


class OptionError(InputError, ValueError):
    """An option value outside its choices (also a ``ValueError`` for library callers)."""


class DeviceError(SatvsrError):
    """The requested device or precision is not available."""

    exit_code = 2


class OutputError(SatvsrError):
    """The output cannot be written (exists without --overwrite, unwritable, ...)."""

    exit_code = 3


class WeightsError(SatvsrError):
    """A weights file or manifest is missing, corrupt, or does not match the network."""

    exit_code = 4


class ModelError(SatvsrError):
    """An unknown network name or an invalid network configuration."""

    exit_code = 5


class OutOfMemory(SatvsrError):
    """Even the smallest tile does not fit in memory."""

    exit_code = 6


class SomeInputsFailed(SatvsrError):
    """Several inputs were given and some of them failed (the others were written)."""

    exit_code = 7


class Interrupted(SatvsrError):
    """The user pressed Ctrl-C; progress was saved where the command supports --resume."""

    exit_code = 130


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an exception (see :data:`EXIT_CODES`); 1 for anything unexpected."""
    if isinstance(exc, SatvsrError):
        return exc.exit_code
    if isinstance(exc, MemoryError):
        return OutOfMemory.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted.exit_code
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return InputError.exit_code
    return 1
