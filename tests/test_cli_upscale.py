"""`satvsr upscale` and `satvsr probe` through the CLI: options, rendering, errors, import cost."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import helpers
import imageio_ffmpeg
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

import satvsr_cli
from satvsr_cli.cli import app
from satvsr_cli.cli.upscale import parse_fps, parse_size, parse_tile
from satvsr_cli.errors import InputError
from satvsr_cli.models import tiny_overrides

runner = CliRunner()


@pytest.fixture
def tiny_weights(tmp_path_factory) -> Path:
    return helpers.tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors", 0)


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "in.mp4"
    rng = np.random.default_rng(0)
    gen = imageio_ffmpeg.write_frames(str(path), (16, 12), fps=Fraction(30000, 1001),
                                      macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for _ in range(5):
        gen.send(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    gen.close()
    return path


@pytest.fixture(autouse=True)
def no_shipped_weights(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(tmp_path_factory.mktemp("empty_weights")))


def one_line_error(result) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in result.output and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_option_parsers():
    assert parse_tile("auto") is None and parse_tile("0") == 0
    assert parse_tile("256") == 256 and parse_tile("128x64") == (128, 64)
    assert parse_size("4G") == 4 << 30 and parse_size("512M") == 512 << 20
    assert parse_size("1.5GiB") == int(1.5 * (1 << 30))
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
    assert parse_fps("29.97") == Fraction(30000, 1001)
    for bad in (lambda: parse_tile("big"), lambda: parse_size("lots"), lambda: parse_fps("x")):
        with pytest.raises(InputError):
            bad()


def test_cli_builds_the_config_and_calls_the_library(monkeypatch, clip, tmp_path):
    seen = {}

    def fake_upscale(config, on_progress=None):
        seen["config"] = config
        raise InputError("stop here")

    monkeypatch.setattr("satvsr_cli.engine.run.upscale", fake_upscale)
    res = runner.invoke(app, [
        "upscale", str(clip), "-o", str(tmp_path / "o.mkv"), "--model", "lgtd", "--tile", "64",
        "--tile-overlap", "16", "--precision", "fp32", "--crf", "20", "--preset", "slow",
        "--encoder-opt", "tune=grain", "--no-audio", "--start", "2", "--end", "4",
        "--value-range", "0,4095", "--bands", "3,2,1", "--max-memory", "2G", "--blend", "linear",
        "--temporal-padding", "reflect", "--no-feature-cache", "--batch", "3", "--fps", "25",
    ])
    assert res.exit_code == 2
    assert one_line_error(res) == "error: stop here"
    c = SimpleNamespace(**seen["config"].flags())  # the flat option names
    assert (c.model, c.tile, c.tile_overlap, c.precision, c.crf, c.preset) == (
        "lgtd", 64, 16, "fp32", 20, "slow")
    assert c.encoder_opts == ("tune=grain",) and c.audio is False
    assert (c.start, c.end, c.value_range, c.bands) == (2, 4, (0.0, 4095.0), (3, 2, 1))
    assert c.max_memory == 2 << 30 and c.blend == "linear" and c.temporal_padding == "reflect"
    assert c.feature_cache is False and c.batch == 3 and c.fps == Fraction(25)
    assert c.output == str(tmp_path / "o.mkv") and c.input == str(clip)


def test_end_to_end_with_weights_and_json_progress(clip, tmp_path, tiny_weights):
    out = tmp_path / "out.mp4"
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(out), "-w", str(tiny_weights),
                              "--progress", "json", "--preset", "ultrafast"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stderr.strip().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("frame") >= 1
    assert events[-2]["done"] == 5 and events[-2]["total"] == 5
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["frames_written"] == 5
    assert summary["weights_sha256"] and summary["output"] == str(out)
    assert out.is_file()
    # a second run refuses to overwrite
    again = runner.invoke(app, ["upscale", str(clip), "-o", str(out), "-w", str(tiny_weights)])
    assert again.exit_code == 3
    assert "--overwrite" in one_line_error(again)


def test_quiet_and_rich_summary(clip, tmp_path, tiny_weights):
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(tmp_path / "frames"), "-w",
                              str(tiny_weights), "-q"])
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == ""
    assert len(list((tmp_path / "frames").glob("*.png"))) == 5
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(tmp_path / "f2"), "-w",
                              str(tiny_weights), "--progress", "plain"])
    assert res.exit_code == 0
    assert "frames" in res.stdout and "peak memory" in res.stdout
    assert "frame 5/5" in res.stderr


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--model", "nosuchnet"], 5, "unknown network"),
    (["--model", "lgtd_small"], 4, "--allow-random"),
    ([], 4, "no default weights"),
    (["-w", "missing.safetensors"], 4, "manifest not found"),
    (["--tile", "huge"], 2, "--tile"),
    (["--start", "99"], 2, "past the end"),
    (["--precision", "fp16"], 2, "fp16"),
])
def test_errors_are_one_line(clip, tmp_path, args, code, needle):
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), *args,
                              "--device", "cpu"])
    assert res.exit_code == code, res.output
    assert needle in one_line_error(res)
    assert not list(tmp_path.glob("o.mp4*"))


def test_bad_inputs_are_one_line(tmp_path, tiny_weights):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    for path in (bad, tmp_path / "missing.mp4"):
        res = runner.invoke(app, ["upscale", str(path), "-o", str(tmp_path / "o.mp4"), "-w",
                                  str(tiny_weights)])
        assert res.exit_code == 2
        assert str(path.name) in one_line_error(res)
    assert not list(tmp_path.glob("o.mp4*"))


def test_weights_that_do_not_match_are_refused(clip, tmp_path, tiny_weights):
    manifest = tiny_weights.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data["config"]["nf"] = 12  # the tensors no longer fit
    manifest.write_text(json.dumps(data))
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "-w",
                              str(tiny_weights)])
    assert res.exit_code == 4
    assert "do not match" in one_line_error(res) or "sha256" in one_line_error(res)


def test_allow_random_runs_with_a_warning(clip, tmp_path, monkeypatch):
    monkeypatch.setattr("satvsr_cli.models.registry._SPECS", dict(
        __import__("satvsr_cli.models.registry", fromlist=["_SPECS"])._SPECS))
    import satvsr_cli.models.registry as reg

    spec = reg._SPECS["lgtd_small"]
    reg._SPECS["lgtd_small"] = type(spec)(**{**spec.__dict__, "default_kwargs": {
        **spec.default_kwargs, **tiny_overrides("lgtd_small")}})
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(tmp_path / "f"), "--model",
                              "lgtd_small", "--allow-random", "--progress", "plain"])
    assert res.exit_code == 0, res.output
    assert "untrained" in res.stderr


def test_probe_video_and_geotiff(clip, tmp_path, tiny_weights):
    res = runner.invoke(app, ["probe", str(clip), "-w", str(tiny_weights), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["input"]["fps"] == "30000/1001" and rep["input"]["frames"] == 5
    assert rep["input"]["width"] == 16 and rep["output"]["width"] == 64
    assert rep["tiles_per_frame"] >= 1 and rep["memory_bytes"]["total"] > 0
    tif = tmp_path / "g.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=10, height=8, count=2, dtype="float32",
                       crs=CRS.from_epsg(32631), transform=Affine(1, 0.5, 10, 0.25, -1, 20),
                       nodata=-9999) as ds:
        ds.write(np.ones((2, 8, 10), np.float32))
    shipped = str(Path(satvsr_cli.__file__).parent / "weights_data" / "lgtd_small.v1.safetensors")
    res = runner.invoke(app, ["probe", str(tif), "--weights", shipped])
    assert "32631" in res.stdout and "-9999" in res.stdout
    assert "estimated" in res.stdout  # float data: the range comes from the data
    res = runner.invoke(app, ["probe", str(tif), "--weights", shipped, "--json"])
    assert res.exit_code == 0, res.output  # ... so the plan can run
    rep = json.loads(res.stdout)
    assert rep["runnable"] is True and rep["problems"] == []
    res = runner.invoke(app, ["probe", str(tif), "--model", "msdtgp", "--json"])
    assert res.exit_code == 4  # no shipped weights for msdtgp: a weights error
    assert json.loads(res.stdout)["problems"][0]["exit_code"] == 4
    assert rep["input"]["transform"] == [1.0, 0.5, 10.0, 0.25, -1.0, 20.0]
    assert rep["output"]["kind"] == "geotiff-stack" and rep["value_range"]["origin"] == "estimated"


def test_help_does_not_import_torch():
    code = ("import sys; from satvsr_cli.cli import app; import typer.testing as t; "
            "r = t.CliRunner().invoke(app, ['upscale', '--help']); assert r.exit_code == 0; "
            "r = t.CliRunner().invoke(app, ['probe', '--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    res = subprocess.run([sys.executable, "-m", "satvsr_cli", "--help"], capture_output=True,
                         text=True, check=True)
    assert "upscale" in res.stdout and "probe" in res.stdout


def _slow_clip(path: Path, n: int = 40, size: int = 64) -> Path:
    rng = np.random.default_rng(1)
    gen = imageio_ffmpeg.write_frames(str(path), (size, size), fps=Fraction(10),
                                      macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for _ in range(n):
        gen.send(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    gen.close()
    return path


def test_ctrl_c_exits_130_and_resume_is_byte_identical(tmp_path, tiny_weights):
    import os
    import signal
    import time

    src = _slow_clip(tmp_path / "in.mp4")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "satvsr_cli", "upscale", str(src), "-w", str(tiny_weights),
            "--segment-frames", "4", "--preset", "ultrafast", "--progress", "json"]
    ref = subprocess.run([*base, "-o", str(tmp_path / "ref.mp4")], capture_output=True,
                         text=True, env=env, check=False)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([*base, "-o", str(out)], stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    frames_seen = 0
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if '"event": "frame"' in line:
            frames_seen += 1
            if frames_seen == 6:
                proc.send_signal(signal.SIGINT)
                break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    error = json.loads(rest.strip().splitlines()[-1])  # --progress json: errors are events
    assert error["event"] == "error" and error["exit_code"] == 130
    assert "interrupted" in error["message"] and "--resume" in error["message"]
    assert "Traceback" not in rest
    assert not out.exists() and (tmp_path / "out.mp4.satvsr.json").exists()
    again = subprocess.run([*base, "-o", str(out), "--resume"], capture_output=True, text=True,
                           env=env, check=False)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["frames_resumed"] >= 4 and summary["frames_total"] == 40
    assert out.read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    assert not (tmp_path / "out.mp4.partial").exists()


def test_unwritable_output_location(clip, tmp_path, tiny_weights):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    res = runner.invoke(app, ["upscale", str(clip), "-o", str(blocker / "out.mp4"), "-w",
                              str(tiny_weights)])
    assert res.exit_code == 3
    assert "cannot create the output folder" in one_line_error(res)
