"""The exit-code table: one code per kind of problem, on every path."""

from __future__ import annotations

import pytest
import torch
import typer

from satvsr_cli.cli._app import guarded
from satvsr_cli.device import resolve_precision
from satvsr_cli.errors import EXIT_CODES, DeviceError, OptionError, OutOfMemory, exit_code_for


def test_a_raw_memory_error_exits_with_the_out_of_memory_code(capsys):
    @guarded
    def boom() -> None:
        raise MemoryError

    with pytest.raises(typer.Exit) as info:
        boom()
    assert info.value.exit_code == OutOfMemory.exit_code == 6
    assert capsys.readouterr().err.startswith("error: out of memory")


def test_bad_precision_is_an_option_error_everywhere():
    with pytest.raises(OptionError, match="unknown precision 'fp8'") as info:
        resolve_precision("fp8", torch.device("cpu"))
    assert exit_code_for(info.value) == 2
    with pytest.raises(DeviceError) as dev:
        resolve_precision("fp16", torch.device("cpu"))
    assert exit_code_for(dev.value) == 2


def test_every_error_class_code_is_in_the_table():
    from satvsr_cli import errors

    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.SatvsrError)}
    assert codes <= set(EXIT_CODES)
