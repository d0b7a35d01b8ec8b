"""Issue 9: without --model/--weights, lossy-coded input (H.264/H.265 video, JPEG frames) gets the
robust default (``DEFAULT_LOSSY``) when one is shipped, lossless input the clean one (``DEFAULT``);
the choice is in the plan, probe, the run summary and the GeoTIFF tags."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import random_video, tiny_weights

from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.plan import plan_job
from satvsr_cli.engine.probe import probe
from satvsr_cli.engine.run import upscale
from satvsr_cli.io.frames import write_image
from satvsr_cli.weights import LOSSY_MARKER, default_choice


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    tiny_weights(folder / "clean.v1.safetensors", 0)
    tiny_weights(folder / "robust.v1.safetensors", 1)
    (folder / "DEFAULT").write_text("clean.v1\n")
    (folder / LOSSY_MARKER).write_text("robust.v1\n")
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(folder))
    return folder


def _video(path: Path, codec: str) -> Path:
    return random_video(path, 6, 16, 16, fps=Fraction(10), codec=codec)


def _frames(folder: Path, suffix: str, n: int = 6, h: int = 16, w: int = 16) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        write_image(folder / f"f{i}.{suffix}", rng.integers(0, 256, (h, w, 3)).astype(np.uint8),
                    "jpeg" if suffix == "jpg" else suffix)
    return folder


def _plan(src: Path, out: Path, **model: object):
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(out), device="cpu", **model)
    return plan_job(cfg, build=False)


def test_lossy_video_gets_the_robust_default(shipped, tmp_path):
    src = _video(tmp_path / "in.mp4", "libx264")
    plan = _plan(src, tmp_path / "out")
    assert plan.model is not None and "robust.v1" in plan.model.label
    assert plan.weights_choice == "default for lossy input (h264 video)"
    report = probe(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"),
                                            device="cpu"))
    assert report.weights is not None and "robust.v1" in report.weights
    assert report.to_json()["weights_choice"] == plan.weights_choice


@pytest.mark.parametrize("kind", ["png", "ffv1"])
def test_lossless_input_gets_the_clean_default(shipped, tmp_path, kind):
    if kind == "png":
        src = _frames(tmp_path / "frames", "png")
    else:
        src = _video(tmp_path / "in.mkv", "ffv1")
    plan = _plan(src, tmp_path / "out")
    assert plan.model is not None and "clean.v1" in plan.model.label
    assert plan.weights_choice == "default for lossless input"


def test_jpeg_frames_are_lossy(shipped, tmp_path):
    plan = _plan(_frames(tmp_path / "frames", "jpg"), tmp_path / "out")
    assert plan.model is not None and "robust.v1" in plan.model.label
    assert plan.weights_choice == "default for lossy input (JPEG frames)"


def test_explicit_weights_are_not_overridden(shipped, tmp_path):
    src = _video(tmp_path / "in.mp4", "libx264")
    plan = _plan(src, tmp_path / "out", weights=str(shipped / "clean.v1.safetensors"))
    assert plan.model is not None and "clean.v1" in plan.model.label
    assert plan.weights_choice is None
    plan = _plan(src, tmp_path / "out", model="lgtd_small")  # --model: its default entry
    assert plan.weights_choice is None


def test_without_a_lossy_default_everything_gets_default(shipped, tmp_path):
    (shipped / LOSSY_MARKER).unlink()
    plan = _plan(_video(tmp_path / "in.mp4", "libx264"), tmp_path / "out")
    assert plan.model is not None and "clean.v1" in plan.model.label
    assert plan.weights_choice == "default"
    assert default_choice(None)[1] == "default"


def test_the_run_records_the_choice(shipped, tmp_path):
    src = _video(tmp_path / "in.mp4", "libx264")
    summary = upscale(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"),
                                               end=2, device="cpu"))
    assert "robust.v1" in summary.model
    assert summary.weights_choice == "default for lossy input (h264 video)"
    stack = tmp_path / "in.tif"
    data = np.random.default_rng(2).integers(0, 256, (3 * 4, 16, 16)).astype(np.uint8)
    with rasterio.open(stack, "w", driver="GTiff", width=16, height=16, count=data.shape[0],
                       dtype="uint8", crs="EPSG:32631",
                       transform=rasterio.Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)) as dst:
        dst.write(data)
    out = tmp_path / "out.tif"
    summary = upscale(UpscaleConfig.from_flags(input=str(stack), output=str(out), end=2,
                                               bands_per_frame=3, device="cpu"))
    assert "clean.v1" in summary.model
    with rasterio.open(out) as ds:
        assert ds.tags()["SATVSR_WEIGHTS_CHOICE"] == "default for lossless input"


def test_weights_list_marks_both_defaults(shipped):
    from typer.testing import CliRunner

    from satvsr_cli.cli import app

    res = CliRunner().invoke(app, ["weights", "list"])
    assert res.exit_code == 0, res.output
    lines = {line.split("\t")[0]: line for line in res.output.splitlines()}
    assert lines["clean.v1"].endswith("(default)")
    assert lines["robust.v1"].endswith("(default for lossy input)")
