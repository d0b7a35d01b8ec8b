"""Whole upscale jobs through the library: every input and output kind, ranges, resume, errors."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine
from helpers import random_video
from rasterio.crs import CRS
from torch import nn

from satvsr_cli.engine import run as run_mod
from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.run import upscale
from satvsr_cli.errors import InputError, Interrupted, OutputError
from satvsr_cli.io.base import Frame, FrameSource, SourceInfo
from satvsr_cli.io.frames import read_image, write_image
from satvsr_cli.io.video import VideoSource, probe_video
from satvsr_cli.models import pad_to_multiple
from satvsr_cli.resize import imresize


class LocalNet(nn.Module):
    """A tiny network following the satvsr contract (receptive field 2 LR px)."""

    scale = 4
    frames = 5
    size_multiple = 4
    feat_channels = 4

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.f = nn.Conv2d(3, 4, 3, padding=1)
        self.g = nn.Conv2d(5 * 4 + 3, 48, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)

    def extract(self, x):
        return torch.tanh(self.f(x))

    def forward_window(self, clip, feats):
        x = torch.cat([feats.flatten(1, 2), clip[:, 2]], 1)
        up = F.interpolate(clip[:, 2], scale_factor=4, mode="nearest")
        return up + 0.1 * F.pixel_shuffle(self.g(x), 4)

    def forward(self, clip):
        b, t, _, h, w = clip.shape
        p = pad_to_multiple(clip, 4)
        return self.forward_window(p, self.extract(p.flatten(0, 1)).unflatten(0, (b, t)))[
            ..., : 4 * h, : 4 * w]


def run(cfg: UpscaleConfig, **kw):
    return upscale(cfg, model=LocalNet().eval(), model_name="local", **kw)


def make_video(path: Path, n=7, h=20, w=28, fps=Fraction(30000, 1001), seed=0):
    return random_video(path, n, h, w, fps=fps, seed=seed, quality=None,
                        output_params=["-crf", "0"])


def make_frames(folder: Path, n=6, h=12, w=16, dtype="uint16", c=3, fmt="png", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max
    for i in range(n):
        write_image(folder / f"f{i}.{fmt}", rng.integers(0, hi + 1, (h, w, c)).astype(dtype), fmt)
    return folder


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def leftovers(tmp_path: Path) -> list[str]:
    """Temporary files and job manifests left behind, except the record of a complete job."""
    def complete(p: Path) -> bool:
        return json.loads(p.read_text()).get("state") == "complete"

    return sorted(p.name for p in tmp_path.rglob("*") if ".partial" in p.name or
                  p.name.endswith(".satvsr.lock") or
                  (p.name.endswith(".satvsr.json") and not complete(p)))


def test_video_to_video_keeps_count_fps_and_size(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=7)
    s = run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out.mp4"), segment_frames=3,
                          preset="ultrafast"))
    assert s.frames_written == 7 and s.output_kind == "video"
    info = probe_video(tmp_path / "out.mp4")
    assert info.n_frames == 7 and info.fps == Fraction(30000, 1001)
    assert (info.width, info.height) == (112, 80)
    assert leftovers(tmp_path) == []


def test_frames_to_frames_are_exact_and_keep_names_and_dtype(tmp_path):
    src = make_frames(tmp_path / "in", n=6)
    s = run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"), tile=8, tile_overlap=6))
    assert s.frames_written == 6 and s.tiles_per_frame > 1 and s.tile == (12, 12)
    out = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in out] == [f"f{i}.png" for i in range(6)]
    img = read_image(out[0])
    assert img.dtype == np.uint16 and img.shape == (48, 64, 3)
    # equal to the network on the untiled window (the overlap covers the receptive field)
    frames = [read_image(src / f"f{i}.png") for i in (0, 0, 0, 1, 2)]
    clip = torch.stack([torch.from_numpy(f.astype(np.float32) / 65535).permute(2, 0, 1)
                        for f in frames])[None]
    with torch.inference_mode():
        ref = LocalNet().eval()(clip)[0].clamp(0, 1).numpy() * 65535
    assert np.abs(img.transpose(2, 0, 1).astype(float) - ref).max() <= 65535 / 255


def test_frame_range_reads_context_and_matches_the_full_run(tmp_path):
    src = make_frames(tmp_path / "in", n=8, dtype="uint8")
    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "full")))
    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "part"), start=3, end=6))
    part = files(tmp_path / "part")
    assert sorted(part) == ["f3.png", "f4.png", "f5.png"]
    full = files(tmp_path / "full")
    for name, data in part.items():
        assert data == full[name]


class CountingSource(FrameSource):
    """Wraps a source and records how far ahead of the written frame it has been read."""

    def __init__(self, inner: FrameSource, log: list[tuple[str, int]]) -> None:
        self.inner, self.info, self.log = inner, inner.info, log

    def frames(self, start: int = 0):
        for f in self.inner.frames(start):
            self.log.append(("read", f.index))
            yield f


def test_streaming_reads_at_most_two_frames_ahead(tmp_path, monkeypatch):
    src = make_video(tmp_path / "in.mp4", n=9, h=8, w=8)
    log: list[tuple[str, int]] = []
    real_open = run_mod.open_source
    monkeypatch.setattr(run_mod, "open_source",
                        lambda *a, **k: CountingSource(real_open(*a, **k), log))

    def on_progress(ev):
        if ev.event == "frame":
            log.append(("wrote", ev.frame))

    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o"), batch=1),
        on_progress=on_progress)
    max_read = -1
    for kind, idx in log:
        if kind == "read":
            max_read = max(max_read, idx)
        else:
            assert max_read <= idx + 2
    assert [i for k, i in log if k == "wrote"] == list(range(9))


def interrupt_after(n):
    state = {"frames": 0}

    def cb(ev):
        if ev.event == "frame":
            state["frames"] += 1
            if state["frames"] >= n:
                raise KeyboardInterrupt

    return cb


@pytest.mark.parametrize("batch", [1, 2])
def test_frames_resume_is_byte_identical(tmp_path, batch):
    src = make_frames(tmp_path / "in", n=7, dtype="uint8")
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"), batch=batch)
    run(cfg.replace(output=str(tmp_path / "ref")))
    with pytest.raises(Interrupted, match="--resume"):
        run(cfg, on_progress=interrupt_after(2))  # batch 2: two frames per network call
    manifest = json.loads((tmp_path / "out.satvsr.json").read_text())
    assert manifest["frames_done"] == 2 * batch and manifest["interrupted"]
    if batch == 2:  # a crash between the two writes of a chunk: the chunk is redone whole
        (tmp_path / "out.partial" / "f3.png").unlink()
    with pytest.raises(OutputError, match="unfinished run"):
        run(cfg)
    s = run(cfg.replace(resume=True))
    assert (s.frames_resumed, s.frames_written) == ((2, 5) if batch == 1 else (3, 4))
    assert files(tmp_path / "out") == files(tmp_path / "ref")
    assert leftovers(tmp_path) == []


def test_video_resume_is_byte_identical(tmp_path):
    src = make_video(tmp_path / "in.mp4", n=8, h=16, w=16)
    base = UpscaleConfig.from_flags(input=str(src), segment_frames=3, preset="ultrafast", batch=1)
    run(base.replace(output=str(tmp_path / "ref.mp4")))
    cfg = base.replace(output=str(tmp_path / "out.mp4"))
    with pytest.raises(Interrupted):
        run(cfg, on_progress=interrupt_after(5))  # mid third segment
    assert (tmp_path / "out.mp4.partial").is_dir() and not (tmp_path / "out.mp4").exists()
    s = run(cfg.replace(resume=True))
    assert s.frames_resumed == 3 and s.frames_written == 5
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()


def test_resume_with_other_settings_is_refused(tmp_path):
    src = make_frames(tmp_path / "in", n=5, dtype="uint8")
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"), batch=1)
    with pytest.raises(Interrupted):
        run(cfg, on_progress=interrupt_after(2))
    with pytest.raises(OutputError, match=r"different settings.*blend"):
        run(cfg.replace(resume=True, blend="linear"))
    s = run(cfg.replace(overwrite=True))  # --overwrite starts again
    assert s.frames_written == 5 and s.frames_resumed == 0


def test_existing_output_is_refused_without_overwrite(tmp_path):
    src = make_frames(tmp_path / "in", n=3, dtype="uint8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(out))
    with pytest.raises(OutputError, match=r"already exists.*--overwrite"):
        run(cfg)
    assert (out / "keep.txt").read_text() == "mine"
    run(cfg.replace(overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "f2.png"]


def test_an_error_in_the_middle_leaves_nothing_behind(tmp_path):
    src = make_frames(tmp_path / "in", n=6, dtype="uint8")
    data = bytearray((src / "f4.png").read_bytes())
    for i in range(100, len(data) - 20):
        data[i] ^= 0x5A  # header and IEND intact: found only when the pixels are decoded
    (src / "f4.png").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"f4.png"):
        run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"), batch=1))
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_truncated_video_leaves_nothing_behind(tmp_path):
    import subprocess

    src = tmp_path / "fs.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=s=32x24:r=10", "-t", "2", "-c:v", "libx264", "-movflags",
                    "+faststart", str(src)], check=True)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated"):
        run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o.mp4"), preset="ultrafast"))
    assert not (tmp_path / "o.mp4").exists() and leftovers(tmp_path) == []


def test_bad_options_fail_before_any_work(tmp_path):
    src = make_frames(tmp_path / "in", n=3, dtype="uint8")
    with pytest.raises(InputError, match="past the end"):
        run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o"), start=3))
    with pytest.raises(InputError, match="--end"):
        run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o"), start=2, end=2))
    with pytest.raises(InputError, match="no such file"):
        run(UpscaleConfig.from_flags(input=str(tmp_path / "nope.mp4"), output=str(tmp_path / "o")))
    with pytest.raises(OutputError, match="stacked GeoTIFF"):
        run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o.tif")))
    assert leftovers(tmp_path) == [] and not (tmp_path / "o").exists()


def test_float_frames_get_an_estimated_range_or_the_given_one(tmp_path):
    src = make_frames(tmp_path / "in", n=2, fmt="tif", dtype="uint8")
    for p in src.iterdir():
        write_image(p, read_image(p).astype(np.float32) / 255 * 10000, "tif")
    s = run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "e")))
    assert s.stats["value_range"]["origin"] == "estimated"
    assert len(s.stats["value_range"]["lo"]) == 3  # one range per band
    assert read_image(tmp_path / "e" / "f0.tif").dtype == np.float32
    s = run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o"), value_range=(0.0, 10000.0)))
    out = read_image(tmp_path / "o" / "f0.tif")
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 10000
    assert s.frames_written == 2


# ------------------------------------------------------------------------------------------
# GeoTIFF
# ------------------------------------------------------------------------------------------

ROTATED = Affine(10.0, 2.0, 500000.0, 1.5, -10.0, 4200000.0)


def write_geotiffs(folder: Path, n=3, h=12, w=16, count=1, dtype="uint16", nodata=0,
                   transform=ROTATED, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = rng.integers(100, 4000, (count, h, w)).astype(dtype)
        data[:, :2, :3] = nodata if nodata is not None else data[:, :2, :3]
        with rasterio.open(folder / f"t{i:02d}.tif", "w", driver="GTiff", width=w, height=h,
                           count=count, dtype=dtype, crs=CRS.from_epsg(32633),
                           transform=transform, nodata=nodata) as ds:
            ds.write(data)
            ds.update_tags(SATVSR_VALUE_RANGE="0,4095")
            for b in range(count):
                ds.set_band_description(b + 1, f"B{b + 1}")
    return folder


def test_geotiff_stack_to_one_geotiff_per_frame(tmp_path):
    src = write_geotiffs(tmp_path / "in", n=3)
    s = run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"), tile=8, tile_overlap=4))
    assert s.output_kind == "geotiff-frames" and s.frames_written == 3
    for i in range(3):
        with rasterio.open(src / f"t{i:02d}.tif") as a, rasterio.open(
            tmp_path / "out" / f"t{i:02d}.tif"
        ) as b:
            assert b.crs == a.crs and b.dtypes == a.dtypes and b.nodata == a.nodata
            assert b.transform.almost_equals(a.transform @ Affine.scale(0.25))
            assert (b.width, b.height) == (4 * a.width, 4 * a.height)
            assert b.descriptions == a.descriptions
            tags = b.tags()
            assert tags["SATVSR_MODEL"] == "local"
            assert tags["SATVSR_NORM"] == "linear 0..4095 (metadata)"
            assert tags["SATVSR_VALUE_RANGE"] == "0,4095"
            assert "SATVSR_WEIGHTS_SHA256" in tags and tags["SATVSR_VERSION"]
            out = b.read(1)
            assert (out[:8, :12] == 0).all()  # nodata restored at x4
            assert (out[8:, 12:] != 0).all()
            assert out.max() <= 4095  # the metadata range is kept


def test_geotiff_stacked_output_and_resume(tmp_path):
    src = write_geotiffs(tmp_path / "in", n=4, count=2, nodata=None, transform=Affine(
        5.0, 0.0, 300000.0, 0.0, -5.0, 5000000.0))
    cfg = UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out.tif"), batch=1)
    ref = run(cfg.replace(output=str(tmp_path / "ref.tif")))
    assert ref.output_kind == "geotiff-stack"
    with rasterio.open(tmp_path / "ref.tif") as ds:
        assert ds.count == 8 and ds.dtypes[0] == "uint16"
        assert json.loads(ds.tags()["SATVSR_FRAMES"]) == ["t00", "t01", "t02", "t03"]
        ref_data = ds.read()
    with pytest.raises(Interrupted):
        run(cfg, on_progress=interrupt_after(2))
    s = run(cfg.replace(resume=True))
    assert s.frames_resumed == 2 and s.frames_written == 2
    with rasterio.open(tmp_path / "out.tif") as ds:
        np.testing.assert_array_equal(ds.read(), ref_data)
    assert leftovers(tmp_path) == []


def test_geotiff_extra_bands_are_bicubic_and_tagged(tmp_path):
    src = write_geotiffs(tmp_path / "in", n=1, count=4, nodata=None)
    run(UpscaleConfig.from_flags(input=str(src / "t00.tif"), output=str(tmp_path / "o.tif"),
                      bands=(3, 2, 1)))
    with rasterio.open(src / "t00.tif") as a, rasterio.open(tmp_path / "o.tif") as b:
        # the bicubic band follows the network bands' rule: clipped to the range (0,4095 here)
        bic = imresize(a.read(4), 4)
        assert bic.max() > 4095  # bicubic overshoot that the rule must remove
        np.testing.assert_array_equal(b.read(4), np.clip(bic, 0, 4095))
        assert b.read().max() <= 4095
        assert b.tags()["SATVSR_BICUBIC_BANDS"] == "4"
        assert "bicubic" in (b.descriptions[3] or "")


def test_geotiffs_on_different_grids_are_refused(tmp_path):
    src = write_geotiffs(tmp_path / "in", n=2)
    with rasterio.open(src / "t01.tif", "r+") as ds:
        ds.transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 0.0)
    with pytest.raises(InputError, match=r"t01.tif"):
        run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o")))
    assert leftovers(tmp_path) == []


def test_source_info_name_of():
    info = SourceInfo(kind="video", spec="x", width=1, height=1, bands=3, dtype="uint8",
                      n_frames=3)
    assert info.name_of(12) == "000012"
    frame = Frame(0, np.zeros((1, 1, 3)), None)
    assert frame.index == 0
    assert isinstance(VideoSource, type)


@pytest.mark.parametrize("kind", ["nodata", "nan", "mask"])
def test_streamed_geotiff_rows_equal_the_full_frame_path(tmp_path, monkeypatch, kind):
    from satvsr_cli.io import geoframes

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    dtype = "float32" if kind == "nan" else "uint16"
    for i in range(2):
        data = rng.integers(100, 4000, (3, 70, 90)).astype(dtype)
        if kind == "nan":
            data[:, 5:9, 7:20] = np.nan
        elif kind == "nodata":
            data[:, 5:9, 7:20] = 0
        profile = {"driver": "GTiff", "width": 90, "height": 70, "count": 3, "dtype": dtype,
                   "crs": CRS.from_epsg(32633), "transform": ROTATED, "tiled": True,
                   "blockxsize": 32, "blockysize": 32, "nodata": 0 if kind == "nodata" else None}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
                src / f"t{i}.tif", "w", **profile) as ds:
            ds.write(data)
            if kind == "mask":
                m = np.full((70, 90), 255, np.uint8)
                m[5:9, 7:20] = 0
                ds.write_mask(m)
    cfg = UpscaleConfig.from_flags(input=str(src), tile=24, tile_overlap=8, value_range=(0.0, 4095.0))
    run(cfg.replace(output=str(tmp_path / "streamed")))
    monkeypatch.setattr(geoframes.GeoFramesSink, "open_rows", lambda self, i, inv: None)
    run(cfg.replace(output=str(tmp_path / "full")))
    for i in range(2):
        with rasterio.open(tmp_path / "streamed" / f"t{i}.tif") as a, rasterio.open(
                tmp_path / "full" / f"t{i}.tif") as b:
            np.testing.assert_array_equal(a.read(), b.read())
            np.testing.assert_array_equal(a.read_masks(), b.read_masks())
            assert (a.profile["blockxsize"], a.nodata, a.transform) == (
                b.profile["blockxsize"], b.nodata, b.transform)
            ta, tb = a.tags(), b.tags()
            ta.pop("TIFFTAG_DATETIME", None), tb.pop("TIFFTAG_DATETIME", None)
            assert ta == tb
            if kind == "nan":  # invalid area stays invalid
                assert np.isnan(a.read(1)[20:36, 28:80]).all()
            else:
                assert (a.read_masks(1)[20:36, 28:80] == 0).all()


def test_cog_output_through_the_row_writer(tmp_path):
    src = write_geotiffs(tmp_path / "in", n=1, h=80, w=80)
    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "out"), cog=True, tile=32,
                      tile_overlap=8))
    with rasterio.open(tmp_path / "out" / "t00.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.transform.almost_equals(ROTATED @ Affine.scale(0.25))
