"""--version, -h on every command, shell completion, and no `<bool>` beside flags in help."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from satvsr_cli import __version__
from satvsr_cli.cli import app

COMMANDS = [[], ["upscale"], ["probe"], ["benchmark"], ["train"], ["models"], ["weights"],
            ["weights", "import"], ["weights", "list"]]
ENV = {"COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    result = CliRunner().invoke(app, [flag])
    assert result.exit_code == 0
    assert result.output.strip() == f"satvsr {__version__}"


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "satvsr")
def test_dash_h_is_help_and_flags_show_no_bool(cmd):
    runner = CliRunner()
    long = runner.invoke(app, [*cmd, "--help"], env=ENV)
    short = runner.invoke(app, [*cmd, "-h"], env=ENV)
    assert long.exit_code == 0 and short.exit_code == 0, short.output
    assert short.output == long.output
    assert "Usage: satvsr" in long.output
    assert "<bool>" not in long.output


def test_value_options_keep_their_type():
    out = CliRunner().invoke(app, ["models", "-h"], env=ENV).output
    assert "<str>" in out and "--no-macs" in out


def test_shell_completion_is_available():
    out = CliRunner().invoke(app, ["--help"], env=ENV).output
    assert "--install-completion" in out and "--show-completion" in out
    env = {**os.environ, "_SATVSR_COMPLETE": "complete_bash", "COMP_WORDS": "satvsr weights i",
           "COMP_CWORD": "2"}
    r = subprocess.run([sys.executable, "-m", "satvsr_cli"], env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.split() == ["import"], (r.stdout, r.stderr)
