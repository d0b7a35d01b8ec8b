"""Honest exits (issue 13): probe fails when its plan cannot run; JSON errors; MemoryError."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from satvsr_cli.cli import app

runner = CliRunner()


@pytest.fixture
def six_bands(tmp_path):
    path = tmp_path / "ms.tif"
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=6, dtype="uint16",
                       crs=CRS.from_epsg(32633), transform=Affine(10, 0, 0, 0, -10, 0)) as ds:
        ds.write(np.full((6, 16, 16), 100, np.uint16))
    return path


def test_probe_exits_non_zero_with_the_reason_when_the_bands_do_not_exist(six_bands):
    res = runner.invoke(app, ["probe", str(six_bands), "--bands", "3,2,9"])
    assert res.exit_code == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "band 9" in errors[0] and "cannot run" in errors[0]
    res = runner.invoke(app, ["probe", str(six_bands), "--bands", "3,2,9", "--json"])
    assert res.exit_code == 2
    rep = json.loads(res.stdout)
    assert rep["runnable"] is False and "band 9" in rep["problems"][0]["message"]
    ok = runner.invoke(app, ["probe", str(six_bands), "--bands", "3,2,1", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["runnable"] is True


def test_probe_exits_out_of_memory_when_the_estimate_exceeds_the_machine(six_bands,
                                                                         monkeypatch):
    from satvsr_cli.engine import probe as probe_mod

    monkeypatch.setattr(probe_mod, "device_available", lambda device: 1 << 20)
    res = runner.invoke(app, ["probe", str(six_bands), "--tile", "0"])
    assert res.exit_code == 6
    assert "estimated" in res.stderr and "--tile" in res.stderr


def test_upscale_json_mode_reports_errors_as_json_events(six_bands, tmp_path):
    res = runner.invoke(app, ["upscale", str(six_bands), "-o", str(tmp_path / "o.tif"),
                              "--bands", "3,2,9", "--progress", "json"])
    assert res.exit_code == 2
    events = [json.loads(line) for line in res.stderr.splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 2
    assert "band 9" in events[-1]["message"]
    res = runner.invoke(app, ["upscale", str(tmp_path / "missing.mp4"), "--progress", "json"])
    assert res.exit_code == 2
    assert json.loads(res.stderr.splitlines()[-1])["event"] == "error"


@pytest.mark.parametrize("mode", ["plain", "json"])
def test_a_raw_memory_error_is_the_out_of_memory_exit(six_bands, tmp_path, monkeypatch, mode):
    from satvsr_cli.engine import run as run_mod

    def boom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(run_mod, "upscale", boom)
    res = runner.invoke(app, ["upscale", str(six_bands), "-o", str(tmp_path / "o.tif"),
                              "--progress", mode])
    assert res.exit_code == 6
    assert "Traceback" not in res.output
    if mode == "json":
        event = json.loads(res.stderr.splitlines()[-1])
        assert event["event"] == "error" and "out of memory" in event["message"]
    else:
        assert res.stderr.strip() == "error: out of memory; try a smaller --tile"


def test_json_mode_turns_library_warnings_into_events(six_bands, tmp_path, monkeypatch):
    import warnings

    from satvsr_cli.engine import run as run_mod
    from satvsr_cli.errors import InputError

    def fake(config, on_progress=None):
        warnings.warn("a library speaks up", UserWarning, stacklevel=1)
        raise InputError("bad input")

    monkeypatch.setattr(run_mod, "upscale", fake)
    res = runner.invoke(app, ["upscale", str(six_bands), "-o", str(tmp_path / "o.tif"),
                              "--progress", "json"])
    assert res.exit_code == 2
    events = [json.loads(line) for line in res.stderr.splitlines()]  # every line is JSON
    assert events[0] == {"event": "warning", "done": 0, "total_exact": True, "elapsed_s": 0.0,
                         "message": "UserWarning: a library speaks up"}
    assert events[-1]["event"] == "error" and events[-1]["message"] == "bad input"
