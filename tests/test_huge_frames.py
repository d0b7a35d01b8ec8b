"""Huge frames and unrelated images (issue 13): tile progress, --window, codec limits, chroma,
--independent and the unrelated-images warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import helpers
import imageio_ffmpeg
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.errors import OutputError
from satvsr_cli.io.frames import write_image
from satvsr_cli.io.video import probe_video
from satvsr_cli.io.video.limits import choose_codec, chroma_of, output_pix_fmt, size_problem

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return helpers.tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors", 0)


def ffmpeg_video(path: Path, size: str, pix_fmt: str = "yuv420p", frames: int = 1,
                 source: str = "testsrc2") -> Path:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
           f"{source}=s={size}:r=10", "-frames:v", str(frames), "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", pix_fmt, str(path)]
    subprocess.run(cmd, check=True)
    return path


# ------------------------------------------------------------------ codec limits and chroma


def test_codec_limits_follow_the_standards():
    assert size_problem("libx264", 8192, 4320) is None  # level 6.2's own example
    assert "macroblocks" in (size_problem("libx264", 8192, 4368) or "")
    assert size_problem("libx265", 8192, 4344) is None
    assert "samples" in (size_problem("libx265", 10240, 10240) or "")
    assert size_problem("ffv1", 100000, 100000) is None
    assert choose_codec(None, 4096, 4096, "o.mp4") == ("libx264", None)
    # H.265 level 6.2 counts samples, H.264 macroblocks: frames whose sides are not multiples
    # of 16 can be beyond H.264 and within H.265
    codec, note = choose_codec(None, 8200, 4344, "o.mp4")
    assert codec == "libx265" and note is not None and "H.264" in note
    with pytest.raises(OutputError, match="--window"):
        choose_codec(None, 10240, 10240, "o.mp4")
    with pytest.raises(OutputError, match="--codec libx265 can hold them"):
        choose_codec("libx264", 8200, 4344, "o.mp4")


def test_chroma_follows_the_source():
    assert chroma_of("yuv444p") == "444" and chroma_of("yuvj420p") == "420"
    assert chroma_of("yuv422p10le") == "422" and chroma_of("gbrp") == "444"
    assert chroma_of("nv12") == "420" and chroma_of(None) is None
    assert output_pix_fmt("libx264", 8, False, "yuv444p", "yuv420p") == "yuv444p"
    assert output_pix_fmt("libx264", 8, False, "yuv420p", "yuv420p") == "yuv420p"
    assert output_pix_fmt("libx265", 10, False, "yuv444p10le", "yuv420p10le") == "yuv444p10le"
    assert output_pix_fmt("libx264", 8, False, None, "yuv420p") == "yuv420p"  # images
    assert output_pix_fmt("ffv1", 8, False, "yuv420p", "gbrp") == "gbrp"  # not a YUV encoder


def test_probe_switches_to_h265_beyond_h264_and_refuses_beyond_both(tmp_path):
    mid = ffmpeg_video(tmp_path / "mid.mp4", "2050x1086", source="color")
    res = runner.invoke(app, ["probe", str(mid), "--json"])
    rep = json.loads(res.stdout)
    assert rep["output"]["codec"] == "libx265"
    assert any("H.265" in n for n in rep["notes"])
    res = runner.invoke(app, ["probe", str(mid), "--codec", "libx264"])
    assert res.exit_code == 3 and "--codec libx265" in res.stderr
    big = ffmpeg_video(tmp_path / "big.mp4", "2600x2600", source="color")
    res = runner.invoke(app, ["probe", str(big)])
    assert res.exit_code == 3 and "--window" in res.stderr
    res = runner.invoke(app, ["upscale", str(big), "-o", str(tmp_path / "big_x4.mp4")])
    assert res.exit_code == 3 and "--window" in res.stderr  # upscale refuses the same plan
    assert not (tmp_path / "big_x4.mp4.partial").exists()
    res = runner.invoke(app, ["probe", str(big), "--window", "0,0,1024,1024", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["output"]["codec"] == "libx264" and rep["output"]["width"] == 4096
    res = runner.invoke(app, ["probe", str(big), "--window", "2000,0,1024,1024"])
    assert res.exit_code == 2 and "outside" in res.stderr


def test_444_video_gives_444_output_with_a_window(tmp_path, weights):
    src = ffmpeg_video(tmp_path / "in.mp4", "24x20", pix_fmt="yuv444p", frames=3)
    out = tmp_path / "out.mp4"
    res = runner.invoke(app, ["upscale", str(src), "-o", str(out), "-w", str(weights),
                              "--window", "2,3,16,12", "--preset", "ultrafast", "-q"])
    assert res.exit_code == 0, res.output
    info = probe_video(out)
    assert str(info.pix_fmt).startswith("yuv444p") and (info.width, info.height) == (64, 48)
    out2 = tmp_path / "out420.mp4"
    res = runner.invoke(app, ["upscale", str(src), "-o", str(out2), "-w", str(weights),
                              "--pix-fmt", "yuv420p", "--preset", "ultrafast", "-q"])
    assert res.exit_code == 0  # --pix-fmt wins
    assert str(probe_video(out2).pix_fmt).startswith("yuv420p")


# ------------------------------------------------------------------ window on GeoTIFFs


def test_geotiff_window_is_the_same_as_upscaling_the_cropped_file(tmp_path, weights):
    rng = np.random.default_rng(0)
    data = rng.integers(100, 4000, (3, 20, 24)).astype("uint16")
    t = Affine(10, 0, 500000, 0, -10, 4000000)
    src = tmp_path / "in.tif"
    crop = tmp_path / "crop.tif"
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint16", "crs": CRS.from_epsg(32633)}
    with rasterio.open(src, "w", width=24, height=20, transform=t, **profile) as ds:
        ds.write(data)
        ds.update_tags(SATVSR_VALUE_RANGE="0,4095")
    with rasterio.open(crop, "w", width=16, height=12, transform=t @ Affine.translation(5, 4),
                       **profile) as ds:
        ds.write(data[:, 4:16, 5:21])
        ds.update_tags(SATVSR_VALUE_RANGE="0,4095")
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    common = ["-w", str(weights), "-q"]
    assert runner.invoke(app, ["upscale", str(src), "-o", str(a), "--window", "5,4,16,12",
                               *common]).exit_code == 0
    assert runner.invoke(app, ["upscale", str(crop), "-o", str(b), *common]).exit_code == 0
    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert (da.width, da.height) == (64, 48)
        assert da.transform == db.transform == t @ Affine.translation(5, 4) @ Affine.scale(0.25)
        np.testing.assert_array_equal(da.read(), db.read())
        assert da.tags()["SATVSR_SOURCE_WINDOW"] == "5,4,16,12"


# ------------------------------------------------------------------ progress per tile


def test_progress_per_tile_within_a_frame(tmp_path, weights):
    folder = tmp_path / "in"
    folder.mkdir()
    base = np.random.default_rng(1).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    for i in range(2):
        write_image(folder / f"f{i}.png", np.ascontiguousarray(base[i:i + 32, i:i + 32]), "png")
    res = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "out"), "-w",
                              str(weights), "--tile", "8", "--tile-overlap", "2", "--batch", "1",
                              "--progress", "json"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stderr.splitlines()]
    tiles = [e for e in events if e["event"] == "tile" and e["frame"] == 0]
    n = tiles[-1]["tiles_total"]
    assert n > 1 and [e["tiles_done"] for e in tiles] == list(range(1, n + 1))
    first_frame = next(i for i, e in enumerate(events) if e["event"] == "frame")
    assert events.index(tiles[-1]) < first_frame  # tile events come before the frame's


def test_rich_and_plain_displays_take_tile_events(capsys):
    from satvsr_cli.cli.upscale import Renderer
    from satvsr_cli.engine.config import ProgressEvent

    info = {"output": "o", "output_kind": "frames", "tile": [8, 8], "tiles_per_frame": 4,
            "batch": 1, "device": "cpu", "precision": "fp32"}
    for mode in ("rich", "plain"):
        r = Renderer(mode, quiet=False)
        r(ProgressEvent("start", total=2, info=info))
        for k in range(1, 5):
            r(ProgressEvent("tile", total=2, frame=0, tiles_done=k, tiles_total=4))
        r(ProgressEvent("frame", done=1, total=2, frame=0))
        r(ProgressEvent("done", done=2, total=2))
        r.stop()
    err = capsys.readouterr().err
    assert "frame 0: tile 1/4" in err  # plain: the first tile line (then one per 5 s)


# ------------------------------------------------------------------ unrelated images


def test_unrelated_images_warn_and_independent_upscales_each_alone(tmp_path, weights):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (16, 16, 3)).astype(np.uint8) for _ in range(3)]
    for i, img in enumerate(imgs):
        write_image(folder / f"img{i}.png", img, "png")
    common = ["-w", str(weights), "--progress", "json"]
    res = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "clip"), *common])
    assert res.exit_code == 0
    warnings = [json.loads(x)["message"] for x in res.stderr.splitlines()
                if json.loads(x)["event"] == "warning"]
    assert any("unrelated images" in w and "--independent" in w for w in warnings)
    res = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "alone"),
                              "--independent", *common])
    assert res.exit_code == 0
    assert not any(json.loads(x)["event"] == "warning" for x in res.stderr.splitlines())
    single = tmp_path / "single"
    single.mkdir()
    write_image(single / "img1.png", imgs[1], "png")
    assert runner.invoke(app, ["upscale", str(single), "-o", str(tmp_path / "one"),
                               *common]).exit_code == 0
    one = (tmp_path / "one" / "img1.png").read_bytes()
    assert (tmp_path / "alone" / "img1.png").read_bytes() == one  # neighbours do not matter
    assert (tmp_path / "clip" / "img1.png").read_bytes() != one


def test_frames_of_one_scene_do_not_warn(tmp_path):
    from satvsr_cli.engine.scenes import neighbour_similarity, unrelated_warning

    folder = tmp_path / "in"
    folder.mkdir()
    base = np.random.default_rng(3).integers(0, 256, (80, 80, 3)).astype(np.uint8)
    files = []
    for i in range(5):  # drifting by 2 px per frame
        p = folder / f"f{i}.png"
        write_image(p, np.ascontiguousarray(base[2 * i:2 * i + 64, i:i + 64]), "png")
        files.append(p)
    assert (neighbour_similarity(files) or 0) > 0.9
    assert unrelated_warning("in", files) is None
