"""Tests for `satvsr benchmark`: the library (evaluate, evaluate_model, speed mode) and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import satvsr_cli.weights as wmod
from satvsr_cli.cli import app
from satvsr_cli.errors import ModelError
from satvsr_cli.eval import (
    BICUBIC,
    evaluate,
    evaluate_bicubic,
    evaluate_model,
    predict_windows,
    speed_compare,
)
from satvsr_cli.jilin import find_clips
from satvsr_cli.resize import imresize

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SATVIDEO = SHARED_DATA / "satvideo"
runner = CliRunner()


# ---------------------------------------------------------------- fixtures and helpers


def _np_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """A straightforward PSNR written here, independent of satvsr_cli.metrics."""
    d = pred.astype(np.float64) - gt.astype(np.float64)
    return float(20 * np.log10(255.0 / np.sqrt(np.mean(d**2))))


def _frame(rng: np.random.Generator, size: int, t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    base = 128 + 70 * np.sin((xx + 2 * t) / 4.0) * np.cos((yy - t) / 6.0)
    img = base[..., None] + rng.normal(0, 12, size=(size, size, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_dataset(root: Path, *, clips=(("000", 7, True, 3), ("clipB", 3, False, 8)), size=48):
    """Jilin-189 layout under ``root/eval``: (name, frames, with LR4x, digits of frame names)."""
    rng = np.random.default_rng(0)
    for name, n, with_lr, digits in clips:
        for t in range(n):
            gt = _frame(rng, size, t)
            fname = f"{t:0{digits}d}.png"
            (root / "eval" / "GT" / name).mkdir(parents=True, exist_ok=True)
            iio.imwrite(root / "eval" / "GT" / name / fname, gt)
            if with_lr:
                (root / "eval" / "LR4x" / name).mkdir(parents=True, exist_ok=True)
                iio.imwrite(root / "eval" / "LR4x" / name / fname, imresize(gt, 0.25))
    return root


@pytest.fixture()
def dataset(tmp_path):
    return make_dataset(tmp_path / "data")


class CentreBicubic(nn.Module):
    """Stand-in network: 2.5 × torch bicubic ×4 of the centre frame − 0.75 (overshoots [0, 1]).

    It has no extract/forward_window, so the benchmark runs it one full window at a time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(clip[:, 2], scale_factor=4, mode="bicubic", align_corners=False)
        return 2.5 * up - 0.75


class WindowMean(nn.Module):
    """Stand-in network following the engine contract: nearest ×4 of a weighted mean of the window.

    ``extract`` is a per-frame map (×2 channel-wise), ``forward_window`` weights the 5 frames
    differently so that the window's frame order matters; size_multiple 4 with bottom/right pads.
    """

    size_multiple = 4
    scale = 4
    weights = (0.05, 0.1, 0.6, 0.15, 0.1)

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.extract_calls = 0

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        self.extract_calls += frames.shape[0]
        return frames * 2.0

    def forward_window(self, clip: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        assert clip.shape[-1] % 4 == 0 and clip.shape[-2] % 4 == 0
        w = torch.tensor(self.weights, dtype=feats.dtype).view(1, 5, 1, 1, 1)
        mix = (feats * w).sum(1) / 2.0
        return F.interpolate(mix, scale_factor=4, mode="nearest")

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        from satvsr_cli.models.blocks import pad_to_multiple

        h, w = clip.shape[-2:]
        p = pad_to_multiple(clip, 4)
        feats = self.extract(p.flatten(0, 1)).unflatten(0, p.shape[:2])
        return self.forward_window(p, feats)[..., : 4 * h, : 4 * w]


def _tiny_network():
    from satvsr_cli.models import TINY_OVERRIDES, build_model

    torch.manual_seed(0)
    return build_model("lgtd_small", **TINY_OVERRIDES["lgtd_small"]).eval()


@pytest.fixture()
def fake_resolve(monkeypatch):
    """Patch weights.resolve_model: known names give a tiny real network, others ModelError."""
    calls = []

    def resolve(model, weights, device="cpu", *, allow_random=False):
        calls.append((model, weights, allow_random))
        if model not in (None, "lgtd_small", "stand_in"):
            raise ModelError(f"unknown network {model!r}")
        if model == "stand_in":
            return CentreBicubic(), "stand_in (random init)", None
        return _tiny_network(), "lgtd_small (random init)", "ab" * 32

    monkeypatch.setattr(wmod, "resolve_model", resolve)
    monkeypatch.setattr(wmod, "default_weights", lambda: None)
    return calls


# ---------------------------------------------------------------- library: bicubic


def test_bicubic_row_matches_an_independent_computation(dataset):
    clips = find_clips(dataset)
    res = evaluate_bicubic(clips)
    assert [c.clip for c in res.clips] == ["000", "clipB"]
    assert [c.frames for c in res.clips] == [7, 3]
    assert res.clips[0].lr_source == "LR4x files"
    assert res.clips[1].lr_source.startswith("imresize(GT, 1/4")  # no LR4x folder: made from GT
    per_clip = []
    for clip in clips:
        vals = []
        for f in clip.gt:
            gt = iio.imread(f)
            lr = iio.imread(clip.lr[clip.gt.index(f)]) if clip.lr else imresize(gt, 0.25)
            vals.append(_np_psnr(imresize(lr, 4), gt))
        per_clip.append(np.mean(vals))
    assert res.clips[0].psnr == pytest.approx(per_clip[0], abs=1e-9)
    assert res.clips[1].psnr == pytest.approx(per_clip[1], abs=1e-9)
    assert res.psnr == pytest.approx(np.mean(per_clip), abs=1e-9)  # mean over clips, not frames
    assert res.psnr_all_frames == pytest.approx((7 * per_clip[0] + 3 * per_clip[1]) / 10, abs=1e-9)
    assert 0 < res.ssim < 1 and res.ms_per_frame > 0 and res.fps_end_to_end > 0


def test_lr_from_gt_equals_the_files_when_they_are_exact(dataset):
    clips = find_clips(dataset)
    a = evaluate_bicubic(clips)
    b = evaluate_bicubic(clips, lr_from_gt=True)
    assert b.clips[0].lr_source.startswith("imresize")
    assert a.clips[0].frame_psnr == b.clips[0].frame_psnr


def test_y_channel_and_crop_change_the_scores_consistently(dataset):
    from satvsr_cli.metrics import psnr, ssim

    clips = find_clips(dataset)
    res = evaluate_bicubic(clips, y_channel=True, crop_border=4, max_frames=2)
    clip = clips[0]
    gt = iio.imread(clip.gt[1])
    pred = imresize(iio.imread(clip.lr[1]), 4)
    assert res.clips[0].frame_psnr[1] == pytest.approx(
        psnr(pred, gt, y_channel=True, crop_border=4)
    )
    assert res.clips[0].frame_ssim[1] == pytest.approx(
        ssim(pred, gt, y_channel=True, crop_border=4)
    )
    assert res.clips[0].frames == 2


def test_identical_frames_give_inf(tmp_path):
    root = tmp_path / "flat" / "GT" / "000"
    root.mkdir(parents=True)
    for t in range(2):
        iio.imwrite(root / f"{t:03d}.png", np.full((32, 32, 3), 90, np.uint8))
    res = evaluate_bicubic(find_clips(tmp_path / "flat"))
    assert res.psnr == math.inf and res.ssim == pytest.approx(1.0)


# ---------------------------------------------------------------- library: networks


def test_network_row_scores_the_unclamped_float_output(dataset):
    clips = find_clips(dataset)
    res = evaluate_model(CentreBicubic(), clips, name="stand_in")
    clip = clips[0]
    for t in (0, 6):
        lr = iio.imread(clip.lr[t]).astype(np.float32) / 255.0
        x = torch.from_numpy(lr).permute(2, 0, 1)[None]
        pred = CentreBicubic()(torch.stack([x[0]] * 5)[None])[0].detach()
        pred = pred.permute(1, 2, 0).double().numpy() * 255.0  # unclamped (overshoots happen)
        assert pred.min() < 0 or pred.max() > 255
        assert res.clips[0].frame_psnr[t] == pytest.approx(_np_psnr(pred, iio.imread(clip.gt[t])))
    q = evaluate_model(CentreBicubic(), clips, name="stand_in", quantize=True, max_frames=1)
    x = torch.from_numpy(iio.imread(clip.lr[0]).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    pq = CentreBicubic()(torch.stack([x[0]] * 5)[None])[0].detach()
    pq = np.clip(np.round(pq.permute(1, 2, 0).double().numpy() * 255.0), 0, 255)
    assert q.clips[0].frame_psnr[0] == pytest.approx(_np_psnr(pq, iio.imread(clip.gt[0])))
    assert q.clips[0].frame_psnr[0] != pytest.approx(res.clips[0].frame_psnr[0], abs=1e-9)


@pytest.mark.parametrize("padding", ["centre", "reflect", "replicate"])
def test_windows_follow_the_temporal_padding(padding):
    from satvsr_cli.engine.windows import frame_indices

    torch.manual_seed(1)
    n = 6
    frames = torch.rand(n, 3, 10, 14)  # not multiples of 4: the engine path pads and crops
    model = WindowMean()
    outs = dict(
        predict_windows(model, frames, range(n), n_total=n, temporal_padding=padding, batch_size=4)
    )
    assert model.extract_calls == n  # each frame's features computed once
    for c in range(n):
        idx = frame_indices(c, n, 5, padding)
        w = torch.tensor(WindowMean.weights).view(5, 1, 1, 1)
        expected = F.interpolate(
            (frames[idx] * w).sum(0, keepdim=True), scale_factor=4, mode="nearest"
        )[0]
        torch.testing.assert_close(outs[c], expected)
    ref = dict(
        predict_windows(
            model, frames, range(n), n_total=n, temporal_padding=padding, share_features=False
        )
    )
    for c in range(n):
        torch.testing.assert_close(outs[c], ref[c])


def test_centre_padding_examples_reach_the_network():
    # t = 0 → [0, 0, 0, 1, 2] (networks.md §11.1): the network sees frame 0 three times
    frames = torch.stack([torch.full((3, 4, 4), float(i)) for i in range(5)])
    seen = []

    class Probe(nn.Module):
        def forward(self, clip):
            seen.append([int(v) for v in clip[0, :, 0, 0, 0]])
            return torch.zeros(clip.shape[0], 3, 16, 16)

    list(predict_windows(Probe(), frames, [0, 1, 4], n_total=5))
    assert seen == [[0, 0, 0, 1, 2], [1, 0, 1, 2, 3], [2, 3, 4, 4, 4]]


def test_real_network_engine_path_equals_full_forward():
    model = _tiny_network()
    torch.manual_seed(2)
    frames = torch.rand(7, 3, 18, 22)  # not a multiple of size_multiple (4)
    with torch.inference_mode():
        a = dict(predict_windows(model, frames, range(7), n_total=7, batch_size=3))
        b = dict(predict_windows(model, frames, range(7), n_total=7, share_features=False))
    for c in range(7):
        assert a[c].shape == (3, 72, 88)
        torch.testing.assert_close(a[c], b[c], rtol=1e-4, atol=1e-5)


def test_evaluate_model_max_frames_and_mode_restore(dataset):
    clips = find_clips(dataset)[:1]
    model = WindowMean()
    model.train()
    full = evaluate_model(model, clips, name="w")
    assert model.training  # restored
    part = evaluate_model(model, clips, name="w", max_frames=3)
    assert part.clips[0].frames == 3
    # the first 3 frames keep their real neighbours (frames 3 and 4), so they score the same
    assert part.clips[0].frame_psnr == pytest.approx(full.clips[0].frame_psnr[:3], abs=1e-12)
    refl = evaluate_model(model, clips, name="w", temporal_padding="reflect")
    assert refl.clips[0].frame_psnr[0] != pytest.approx(full.clips[0].frame_psnr[0], abs=1e-9)
    assert refl.clips[0].frame_psnr[3] == pytest.approx(full.clips[0].frame_psnr[3], abs=1e-12)


def test_evaluate_model_measures_costs(dataset):
    clips = find_clips(dataset)[:1]
    res = evaluate_model(_tiny_network(), clips, name="tiny", measure=True, max_frames=2)
    assert res.params == sum(p.numel() for p in _tiny_network().parameters())
    assert res.gmac_per_frame is not None and res.gmac_per_frame > 0
    assert res.ms_per_frame > 0 and res.fps_end_to_end > 0 and res.peak_mem_mb >= 0
    assert res.device == "cpu" and res.precision == "fp32"


# ---------------------------------------------------------------- library: evaluate()


def test_evaluate_orders_rows_and_records_settings(dataset, fake_resolve):
    report = evaluate(
        dataset,
        models=["lgtd_small"],
        device="cpu",
        max_frames=2,
        temporal_padding="reflect",
        crop_border=2,
    )
    assert [m.method for m in report.methods] == [BICUBIC, "lgtd_small (random init)"]
    s = report.settings
    assert s["channel"] == "rgb" and s["crop_border"] == 2 and s["data_range"] == 255
    assert s["edge_mode"] == "reflect" and s["device"] == "cpu" and s["precision"] == "fp32"
    assert s["weights_sha256"] == {"lgtd_small (random init)": "ab" * 32}
    assert set(s["versions"]) >= {"satvsr", "torch", "numpy"}
    assert "LR4x files" in s["lr_source"] and "clipB" in s["lr_source"]  # mixed sources
    assert fake_resolve == [("lgtd_small", None, False)]


# ---------------------------------------------------------------- speed mode


def test_speed_compare_engine_against_reference():
    res = speed_compare(_tiny_network(), name="tiny", lr_size=(16, 20), frames=4, batch_size=2)
    assert res.max_abs_diff < 1e-4
    assert res.engine_fps > 0 and res.reference_fps > 0
    assert res.speedup == pytest.approx(res.engine_fps / res.reference_fps)
    assert res.gmac_full_forward > 0 and res.gmac_engine_per_frame > 0
    assert res.gmac_engine_per_frame < res.gmac_full_forward  # features shared across windows
    assert res.matmul_peak_gflops > 0 and res.engine_gflops > 0
    json.dumps(res.to_json(), allow_nan=False)


# ---------------------------------------------------------------- CLI


def _invoke(args):
    return runner.invoke(app, ["benchmark", *args])


def test_cli_json_schema_with_a_network_row(dataset, tmp_path, fake_resolve):
    out = tmp_path / "out.json"
    csv_out = tmp_path / "out.csv"
    r = _invoke(
        [
            "--data",
            str(dataset),
            "--model",
            "lgtd_small",
            "--allow-random",
            "--json",
            str(out),
            "--csv",
            str(csv_out),
            "--device",
            "cpu",
            "--max-frames",
            "2",
        ]
    )
    assert r.exit_code == 0, r.output
    assert "bicubic" in r.stdout and "lgtd_small (random init)" in r.stdout
    assert fake_resolve == [("lgtd_small", None, True)]
    doc = json.loads(out.read_text())
    assert set(doc) >= {"settings", "results", "summary"}
    s = doc["settings"]
    for key in (
        "channel",
        "crop_border",
        "data_range",
        "edge_mode",
        "lr_source",
        "weights_sha256",
        "versions",
        "device",
        "precision",
        "date",
    ):
        assert key in s, key
    assert {(row["method"], row["clip"]) for row in doc["results"]} == {
        (m, c) for m in ("bicubic", "lgtd_small (random init)") for c in ("000", "clipB")
    }
    for row in doc["results"]:
        assert set(row) >= {"method", "clip", "frames", "psnr", "ssim"}
        assert row["frames"] == 2
    summ = {row["method"]: row for row in doc["summary"]}
    assert set(summ) == {"bicubic", "lgtd_small (random init)"}
    for row in summ.values():
        assert set(row) >= {"method", "psnr", "ssim", "ms_per_frame", "peak_mem_mb"}
    assert summ["lgtd_small (random init)"]["params"] > 0
    assert summ["lgtd_small (random init)"]["gmac_per_frame"] > 0
    bic = next(r for r in doc["results"] if r["method"] == "bicubic" and r["clip"] == "000")
    clip = find_clips(dataset)[0]
    expected = np.mean(
        [_np_psnr(imresize(iio.imread(clip.lr[t]), 4), iio.imread(clip.gt[t])) for t in range(2)]
    )
    assert bic["psnr"] == pytest.approx(expected, abs=1e-9)
    assert csv_out.read_text().splitlines()[0].startswith("method,clip,frames,psnr,ssim")


def test_cli_markdown_and_options(dataset, tmp_path, fake_resolve):
    out = tmp_path / "o.json"
    r = _invoke(
        [
            "--data",
            str(dataset),
            "--markdown",
            "--y-channel",
            "--crop-border",
            "4",
            "--lr-from-gt",
            "--json",
            str(out),
        ]
    )
    assert r.exit_code == 0, r.output
    assert "| method | clip |" in r.stdout
    s = json.loads(out.read_text())["settings"]
    assert s["channel"] == "y" and s["crop_border"] == 4
    assert s["lr_source"].startswith("imresize(GT, 1/4")


def test_cli_inf_is_valid_json(tmp_path):
    root = tmp_path / "flat" / "GT" / "000"
    root.mkdir(parents=True)
    for t in range(2):
        iio.imwrite(root / f"{t:03d}.png", np.full((32, 32, 3), 90, np.uint8))
    out = tmp_path / "flat.json"
    r = _invoke(["--data", str(tmp_path / "flat"), "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["summary"][0]["psnr"] == "inf"
    assert "inf" in r.stdout


def test_cli_speed_mode(tmp_path, fake_resolve):
    out = tmp_path / "speed.json"
    r = _invoke(
        [
            "--speed",
            "-m",
            "lgtd_small",
            "--size",
            "20x16",
            "--frames",
            "3",
            "--repeats",
            "2",
            "--json",
            str(out),
        ]
    )
    assert r.exit_code == 0, r.output
    assert "speed-up" in r.stdout
    doc = json.loads(out.read_text())["speed"][0]
    assert doc["lr_size"] == [16, 20] and doc["frames"] == 3 and doc["repeats"] == 2
    assert doc["engine"].startswith("satvsr_cli.engine")  # the real engine, not the fallback
    assert doc["max_abs_diff"] < 1e-4 and doc["matmul_peak_gflops"] > 0


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--data", "{tmp}/nope"], 2, "no such data folder"),
        (["--data", "{tmp}"], 2, "no GT/ folder"),
        (["--data", "{data}", "--model", "nonexistent"], 5, "unknown network"),
        (["--data", "{data}", "--json", "{tmp}/missing/out.json"], 3, "does not exist"),
        (["--data", "{data}", "--precision", "fp8"], 2, "unknown precision"),
        (["--data", "{data}", "--temporal-padding", "wrap"], 2, "unknown temporal padding"),
        (["--speed", "--size", "12", "--model", "lgtd_small"], 2, "--size"),
        ([], 2, "--data DIR is required"),
    ],
)
def test_cli_errors_are_one_line(dataset, tmp_path, fake_resolve, args, code, needle):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(tmp=empty, data=dataset) for a in args]
    r = _invoke(args)
    assert r.exit_code == code, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], r.stderr
    assert "Traceback" not in r.output
    assert not (empty / "missing").exists()


def test_cli_module_does_not_import_torch():
    code = (
        "import sys, satvsr_cli.cli.benchmark; "
        "sys.exit(1 if 'torch' in sys.modules or 'numpy' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------- real data (skips when absent)


@pytest.mark.parametrize(
    ("root", "expected"),
    [("jilin1/eval", 27.866), ("taipei/eval", 28.550)],
)
def test_bicubic_on_real_data_matches_provenance_and_an_independent_psnr(root, expected):
    data = SATVIDEO / root
    if not (data / "GT").is_dir():
        pytest.skip(f"real data not available ({data} missing)")
    clips = find_clips(data)
    res = evaluate_bicubic(clips)
    vals = []
    for t, (g, lr) in enumerate(zip(clips[0].gt, clips[0].lr, strict=True)):
        gt = iio.imread(g)
        up = imresize(iio.imread(lr), 4)
        vals.append(_np_psnr(up, gt))
        assert res.clips[0].frame_psnr[t] == pytest.approx(vals[-1], abs=1e-9)
    assert res.psnr == pytest.approx(float(np.mean(vals)), abs=1e-9)
    assert round(res.psnr, 3) == expected  # PROVENANCE.md's table, computed independently
    # and SSIM against scikit-image on the first frame
    skm = pytest.importorskip("skimage.metrics")
    gt = iio.imread(clips[0].gt[0])
    up = imresize(iio.imread(clips[0].lr[0]), 4)
    ref = skm.structural_similarity(
        up,
        gt,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert res.clips[0].frame_ssim[0] == pytest.approx(ref, abs=1e-9)


def test_cli_frames_too_small_for_the_crop_is_one_line(tmp_path):
    make_dataset(tmp_path / "small", clips=(("000", 2, True, 3),), size=16)
    r = _invoke(["--data", str(tmp_path / "small"), "--crop-border", "4"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "cannot score this frame" in err[0]


def test_default_weights_row_when_no_model_is_given(dataset, monkeypatch, fake_resolve):
    monkeypatch.setattr(wmod, "default_weights", lambda: Path("/x/default.safetensors"))
    report = evaluate(dataset, device="cpu", max_frames=1)
    assert [m.method for m in report.methods] == [BICUBIC, "lgtd_small (random init)"]
    assert fake_resolve == [(None, None, False)]
    assert report.settings["weights"][0]["path"] == "/x/default.safetensors"
    bare = evaluate(dataset, device="cpu", max_frames=1, include_default=False)
    assert [m.method for m in bare.methods] == [BICUBIC]


def test_speed_compare_falls_back_when_the_engine_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "satvsr_cli.engine.infer", None)  # import now fails
    res = speed_compare(WindowMean(), name="w", lr_size=(10, 14), frames=3, batch_size=2)
    assert "not importable" in res.engine
    assert res.max_abs_diff < 1e-6


def test_uint16_frames_use_their_own_data_range(tmp_path):
    pytest.importorskip("tifffile")  # 16-bit RGB is written as TIFF
    rng = np.random.default_rng(5)
    d = tmp_path / "u16" / "GT" / "000"
    d.mkdir(parents=True)
    gts = []
    for t in range(2):
        gt = (_frame(rng, 32, t).astype(np.uint16) * 257).astype(np.uint16)
        iio.imwrite(d / f"{t:03d}.tif", gt)  # PIL cannot write 16-bit RGB PNG
        gts.append(iio.imread(d / f"{t:03d}.tif"))
    assert gts[0].dtype == np.uint16
    res = evaluate_bicubic(find_clips(tmp_path / "u16"))
    expected = []
    for gt in gts:
        pred = imresize(imresize(gt, 0.25), 4).astype(np.float64)
        mse = np.mean((pred - gt.astype(np.float64)) ** 2)
        expected.append(10 * np.log10(65535.0**2 / mse))
    assert res.clips[0].frame_psnr == pytest.approx(expected, abs=1e-9)
    model_res = evaluate_model(CentreBicubic(), find_clips(tmp_path / "u16"), name="s")
    assert np.isfinite(model_res.psnr)


def test_the_old_module_name_still_resolves():
    import satvsr_cli.benchmark as old
    import satvsr_cli.eval as new

    assert old.evaluate is new.evaluate and old.speed_compare is new.speed_compare
    assert set(old.__all__) == set(new.__all__)
    with pytest.raises(AttributeError):
        _ = old.no_such_name
