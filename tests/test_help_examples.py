"""Every path an example in the command help names as an input exists in the repository."""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main

from satvsr_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
#: Options whose value is a file the example writes (need not exist).
OUTPUT_FLAGS = {"-o", "--output", "--json", "--csv", "--compare", "--compare-png", "--out-dir"}
EXAMPLE = re.compile(r"satvsr\s+[a-z][^\n`\[\]]*")


def _texts(cmd: Any) -> Iterator[str]:
    """Help texts of a command and its sub-commands (Typer vendors its own click: duck-typed)."""
    yield cmd.help or ""
    yield cmd.epilog or ""
    for p in cmd.params:
        yield getattr(p, "help", None) or ""
    for sub in getattr(cmd, "commands", {}).values():
        yield from _texts(sub)


def example_inputs(text: str) -> list[str]:
    """The path-like arguments (containing ``/``) of ``satvsr ...`` examples that are not outputs."""
    found = []
    for m in EXAMPLE.finditer(text):
        words = shlex.split(m.group(0))
        for prev, word in itertools.pairwise(words):
            if "/" in word and not word.startswith("-") and prev not in OUTPUT_FLAGS:
                found.append(word)
    return found


def test_example_parser_finds_inputs_and_skips_outputs():
    text = "Example: [bold]satvsr upscale demo/x.mp4 -o out/y.mp4 --json r/s.json[/bold]"
    assert example_inputs(text) == ["demo/x.mp4"]


def test_help_examples_name_existing_files():
    texts = "\n".join(_texts(typer.main.get_command(app)))
    paths = example_inputs(texts)
    assert paths, "no example with a path found in the help (the parser is broken?)"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"help examples name files that do not exist: {missing}"
