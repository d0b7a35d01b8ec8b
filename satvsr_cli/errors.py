"""Errors that the CLI turns into one clear line on stderr and a non-zero exit code."""

from __future__ import annotations


class SatvsrError(Exception):
    """Base class: a problem the user can fix. The message is one line, shown as is."""

    exit_code: int = 1


class InputError(SatvsrError):
    """The input (video, frames, GeoTIFFs, dataset) is missing, unreadable or inconsistent."""

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


class Interrupted(SatvsrError):
    """The user pressed Ctrl-C; progress was saved where the command supports --resume."""

    exit_code = 130
