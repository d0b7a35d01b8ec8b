"""Comparison pictures: `benchmark --compare-png` and `upscale --compare`."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from helpers import tiny_weights
from PIL import Image
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.io.frames import write_image
from satvsr_cli.panels import GAP, LABEL_HEIGHT, compose, nearest_up, read_layout, to_display
from satvsr_cli.resize import imresize

runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.fixture
def two_weights(tmp_path, monkeypatch) -> tuple[Path, Path]:
    empty = tmp_path / "no_shipped"
    empty.mkdir()
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(empty))
    return tiny_weights(tmp_path / "a" / "net.safetensors", 0), tiny_weights(tmp_path / "b" / "net.safetensors", 1)


@pytest.fixture
def dataset(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for t in range(5):
        base = 128 + 70 * np.sin((xx + 2 * t) / 4.0) * np.cos((yy - t) / 6.0)
        gt = np.clip(np.round(base[..., None] + rng.normal(0, 10, (32, 32, 3))), 0, 255)
        gt = gt.astype(np.uint8)
        for sub, img in (("GT", gt), ("LR4x", imresize(gt, 0.25))):
            folder = tmp_path / "data" / sub / "000"
            folder.mkdir(parents=True, exist_ok=True)
            iio.imwrite(folder / f"{t:03d}.png", img)
    return tmp_path / "data"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(10 * np.log10(255.0**2 / np.mean(d**2)))


# ---------------------------------------------------------------- panels


def test_compose_layout_and_labels():
    a = np.zeros((10, 12, 3), np.uint8)
    b = np.full((10, 12, 3), 200, np.uint8)
    canvas, panels = compose([a, b], ["left", "right"], [None, 31.234], even=True)
    assert canvas.shape == (LABEL_HEIGHT + 10, 2 * 12 + GAP, 3)
    assert [p.x0 for p in panels] == [0, 12 + GAP]
    assert [p.lines for p in panels] == [["left"], ["right", "PSNR 31.23 dB"]]
    assert (canvas[LABEL_HEIGHT:, 12 + GAP :] == 200).all()  # the panel itself, untouched
    assert canvas[:LABEL_HEIGHT].max() > 200  # the label text is drawn (white on dark)
    assert canvas[:LABEL_HEIGHT, 12 + GAP :].max() > 200  # the second label too
    assert (canvas[:LABEL_HEIGHT, 12 : 12 + GAP] == 32).all()  # labels are cut at their panel
    with pytest.raises(ValueError, match="must all"):
        compose([a, np.zeros((9, 12, 3), np.uint8)], ["x", "y"])
    assert to_display(np.array([[[-5.0, 127.6, 300.0]]])).tolist() == [[[0, 128, 255]]]


# ---------------------------------------------------------------- benchmark --compare-png


def test_benchmark_compare_png(dataset, two_weights, tmp_path):
    wa, wb = two_weights
    png = tmp_path / "cmp.png"
    report = tmp_path / "r.json"
    r = runner.invoke(app, ["benchmark", "--data", str(dataset), "-w", str(wa), "-w", str(wb),
                            "--compare-png", str(png), "--compare-frame", "1", "--json",
                            str(report), "--device", "cpu"], env=ENV)
    assert r.exit_code == 0, r.output
    doc = json.loads(report.read_text())
    methods = [row["method"] for row in doc["summary"]]
    assert methods == ["bicubic", f"lgtd_small ({wa})", f"lgtd_small ({wb})"]
    with Image.open(png) as im:
        assert im.size == (5 * 32 + 4 * GAP, 32 + LABEL_HEIGHT) and im.mode == "RGB"
        pic = np.asarray(im)
    layout = read_layout(png)
    assert layout["clip"] == "000" and layout["frame"] == 1
    labels = [p["label"] for p in layout["panels"]]
    assert labels == ["LR (nearest x4)", *methods, "GT"]
    # each scored panel carries the report's PSNR of that very frame
    frame_psnr = {row["method"]: row["frame_psnr"][1] for row in doc["results"]}
    for p in layout["panels"][1:4]:
        assert p["psnr"] == frame_psnr[p["label"]]
        assert p["text"] == f"{p['label']}  PSNR {frame_psnr[p['label']]:.2f} dB"
    assert layout["panels"][0]["psnr"] is None and layout["panels"][4]["psnr"] is None
    # and the pixels are what the labels say
    lr = iio.imread(dataset / "LR4x" / "000" / "001.png")
    gt = iio.imread(dataset / "GT" / "000" / "001.png")
    panel = [pic[LABEL_HEIGHT:, p["x0"] : p["x0"] + p["width"]] for p in layout["panels"]]
    np.testing.assert_array_equal(panel[0], nearest_up(lr, 4))
    np.testing.assert_array_equal(panel[1], imresize(lr, 4))
    np.testing.assert_array_equal(panel[4], gt)
    assert frame_psnr["bicubic"] == pytest.approx(_psnr(imresize(lr, 4), gt), abs=1e-9)
    assert not np.array_equal(panel[2], panel[3])  # two different networks
    assert doc["settings"]["compare_png"]["frame"] == 1


def test_benchmark_compare_png_default_frame_and_errors(dataset, two_weights, tmp_path):
    wa, _ = two_weights
    png = tmp_path / "c.png"
    r = runner.invoke(app, ["benchmark", "--data", str(dataset), "-w", str(wa), "--max-frames",
                            "3", "--compare-png", str(png), "--device", "cpu"], env=ENV)
    assert r.exit_code == 0, r.output
    assert read_layout(png)["frame"] == 1  # the middle of the 3 scored frames
    for args, code, needle in [
        (["--compare-png", str(tmp_path / "x.png"), "--compare-frame", "5"], 2, "scored frames"),
        (["--compare-png", str(tmp_path / "x.jpg")], 3, ".png"),
        (["--compare-frame", "1"], 2, "needs --compare-png"),
    ]:
        r = runner.invoke(app, ["benchmark", "--data", str(dataset), "-w", str(wa), *args],
                          env=ENV)
        assert r.exit_code == code, r.output
        assert needle in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- upscale --compare


@pytest.fixture
def clip(tmp_path) -> Path:
    from fractions import Fraction

    import imageio_ffmpeg

    path = tmp_path / "in.mp4"
    rng = np.random.default_rng(0)
    gen = imageio_ffmpeg.write_frames(str(path), (16, 12), fps=Fraction(10), quality=None,
                                      output_params=["-crf", "0"], macro_block_size=1,
                                      ffmpeg_log_level="error")
    gen.send(None)
    for _ in range(5):
        gen.send(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    gen.close()
    return path


def _frames(spec: Path, kind: str = "auto") -> list[np.ndarray]:
    from satvsr_cli.io import open_source

    with open_source(str(spec), kind) as src:
        return [f.data for f in src.frames()]


def test_upscale_compare_png_of_a_chosen_frame(clip, two_weights, tmp_path):
    wa, _ = two_weights
    out, png = tmp_path / "o.mp4", tmp_path / "cmp.png"
    r = runner.invoke(app, ["upscale", str(clip), "-o", str(out), "-w", str(wa), "--compare",
                            str(png), "--compare-frame", "2", "--progress", "none"], env=ENV)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.stderr and "frame 2" in r.stderr
    layout = read_layout(png)
    assert [p["label"] for p in layout["panels"]] == ["bicubic x4", "satvsr lgtd_small"]
    assert layout["frame"] == 2
    with Image.open(png) as im:
        assert im.size == (2 * 64 + GAP, 48 + LABEL_HEIGHT)
        pic = np.asarray(im)
    left = pic[LABEL_HEIGHT:, :64]
    right = pic[LABEL_HEIGHT:, 64 + GAP :]
    np.testing.assert_array_equal(left, to_display(imresize(_frames(clip)[2].astype(float), 4)))
    np.testing.assert_array_equal(right, _frames(out)[2])  # the written output's frame 2


def test_upscale_compare_video_and_frames_input(clip, two_weights, tmp_path):
    wa, _ = two_weights
    out, vid = tmp_path / "o.mp4", tmp_path / "cmp.mp4"
    r = runner.invoke(app, ["upscale", str(clip), "-o", str(out), "-w", str(wa), "--compare",
                            str(vid), "-q"], env=ENV)
    assert r.exit_code == 0, r.output
    frames = _frames(vid)
    assert len(frames) == 5 and frames[0].shape == (48 + LABEL_HEIGHT, 2 * 64 + GAP, 3)
    assert not list(tmp_path.glob(".*partial*"))
    # a 16-bit frame folder: one frame, stretched for display
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for t in range(3):
        write_image(folder / f"{t:02d}.png", rng.integers(0, 4096, (12, 16, 3), dtype=np.uint16), "png")
    png = tmp_path / "f.png"
    r = runner.invoke(app, ["upscale", str(folder), "-o", str(tmp_path / "fo"), "-w", str(wa),
                            "--compare", str(png), "-q"], env=ENV)
    assert r.exit_code == 0, r.output
    assert read_layout(png)["frame"] == 1  # the middle of 3
    with Image.open(png) as im:
        left = np.asarray(im)[LABEL_HEIGHT:, :64]
    assert left.min() == 0 and left.max() == 255  # 12-bit data stretched, not near-black


def test_upscale_compare_errors_before_the_run(clip, two_weights, tmp_path):
    wa, _ = two_weights
    out = tmp_path / "o.mp4"
    (tmp_path / "exists.png").write_bytes(b"x")
    for args, code, needle in [
        (["--compare", str(tmp_path / "c.jpg")], 3, "--compare writes"),
        (["--compare", str(tmp_path / "exists.png")], 3, "--overwrite"),
        (["--compare", str(out)], 3, "differ from the output"),
        (["--compare", str(tmp_path / "nope" / "c.png")], 3, "does not exist"),
        (["--compare-frame", "1"], 2, "needs --compare"),
    ]:
        r = runner.invoke(app, ["upscale", str(clip), "-o", str(out), "-w", str(wa), *args],
                          env=ENV)
        assert r.exit_code == code, (args, r.output)
        assert needle in r.stderr and "Traceback" not in r.output
        assert not out.exists()  # refused before the job
    assert (tmp_path / "exists.png").read_bytes() == b"x"
