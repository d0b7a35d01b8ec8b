"""`probe` and `upscale` share one plan: what probe reports is what the run uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from helpers import random_video, tiny_weights
from rasterio.crs import CRS

from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.plan import plan_job
from satvsr_cli.engine.probe import probe
from satvsr_cli.engine.run import upscale
from satvsr_cli.errors import OptionError
from satvsr_cli.io.frames import write_image
from satvsr_cli.models import get_spec
from satvsr_cli.options import Blend, ExistingOutput, OutputKind, Precision


@pytest.fixture(autouse=True)
def no_shipped_weights(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(tmp_path_factory.mktemp("empty_weights")))


def _video(path: Path, n: int = 4, h: int = 12, w: int = 16) -> Path:
    return random_video(path, n, h, w)


def _frames(folder: Path, n: int = 4, h: int = 12, w: int = 16) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        write_image(folder / f"f{i}.png", rng.integers(0, 65536, (h, w, 3)).astype(np.uint16),
                    "png")
    return folder


def _geotiff(path: Path, n: int = 3, h: int = 12, w: int = 16) -> Path:
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4096, (3 * n, h, w)).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3 * n,
                       dtype="uint16", crs=CRS.from_epsg(32631),
                       transform=Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize(
    ("kind", "network", "out_name", "expected_kind"),
    [
        ("video", "lgtd_small", "out.mp4", OutputKind.video),
        ("frames", "msdtgp_small", "out", OutputKind.frames),
        ("geotiff", "lgtd", "out.tif", OutputKind.geotiff_stack),
        ("geotiff", "lgtd_small", "out_frames", OutputKind.geotiff_frames),
    ],
)
def test_probe_reports_what_the_run_uses(tmp_path, kind, network, out_name, expected_kind):
    weights = tiny_weights(tmp_path / f"{network}.safetensors", 0, network)
    if kind == "video":
        src = _video(tmp_path / "in.mp4")
    elif kind == "frames":
        src = _frames(tmp_path / "in")
    else:
        src = _geotiff(tmp_path / "in.tif")
    flags = {"input": str(src), "output": str(tmp_path / out_name), "weights": str(weights),
             "device": "cpu", "preset": "ultrafast"}
    if kind == "geotiff":
        flags["bands_per_frame"] = 3
    cfg = UpscaleConfig.from_flags(**flags)

    report = probe(cfg)
    used = []
    summary = upscale(cfg, on_plan=used.append)
    plan = used[0]

    assert report.output_kind == summary.output_kind == plan.kind == expected_kind
    assert report.tile == summary.tile == plan.tile
    assert report.grid[0] * report.grid[1] == summary.tiles_per_frame
    assert report.precision == summary.precision == plan.precision == Precision.fp32
    assert report.batch == summary.batch
    assert report.size_multiple == plan.size_multiple
    assert report.output == summary.output
    # the size multiple is the built network's (the tiny LGTD's HAT window is 4, its preset 16)
    assert plan.size_multiple == plan.model.network.size_multiple
    if network == "lgtd":
        assert plan.size_multiple == 4 != get_spec("lgtd").size_multiple


def test_geotiff_stack_output_is_streamed_in_the_plan(tmp_path):
    src = _geotiff(tmp_path / "in.tif")
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o.tif"),
                                   model="lgtd_small", bands_per_frame=3, device="cpu")
    plan = plan_job(cfg, build=False)
    assert plan.kind == OutputKind.geotiff_stack and plan.streamed
    rep = probe(cfg)
    strips = 2 * 3 * plan.tiles.tile_height * 4 * plan.tiles.padded_width * 4 * 4
    assert rep.memory["output_frame"] == strips  # no full x4 frame buffer


def test_config_sections_and_flags_round_trip():
    cfg = UpscaleConfig.from_flags(input="a.mp4", tile=64, blend="linear", resume=True,
                                   compress="zstd", precision="fp32")
    assert cfg.compute.blend is Blend.linear and cfg.compute.tile == 64
    assert cfg.run.existing is ExistingOutput.resume
    assert cfg.output.raster.compress == "zstd" and cfg.compute.precision is Precision.fp32
    assert UpscaleConfig.from_flags(**cfg.flags()) == cfg
    assert cfg.replace(overwrite=True).run.existing is ExistingOutput.overwrite
    with pytest.raises(OptionError, match="unknown blend 'soft'"):
        UpscaleConfig.from_flags(input="a.mp4", blend="soft")
    with pytest.raises(OptionError, match="exclude each other"):
        UpscaleConfig.from_flags(input="a.mp4", overwrite=True, resume=True)
