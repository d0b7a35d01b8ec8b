"""`satvsr benchmark --lr-codec` (coded-input rows) and `--ablate-window` (temporal contribution)."""

from __future__ import annotations

import numpy as np
import pytest
from test_benchmark import CentreBicubic, WindowMean, make_dataset

from satvsr_cli.errors import InputError
from satvsr_cli.eval.protocol import evaluate_bicubic, evaluate_model, load_lr
from satvsr_cli.io.lossy import code_frames
from satvsr_cli.jilin import find_clips


@pytest.fixture()
def clips(tmp_path):
    return find_clips(make_dataset(tmp_path / "d", clips=(("000", 7, True, 3),)) / "eval")


def test_coded_lr_is_the_whole_clip_coded_once(clips):
    clean = load_lr(clips[0], lr_from_gt=False, max_frames=None)
    coded = load_lr(clips[0], lr_from_gt=False, max_frames=None, lr_codec=("h264", 23))
    expect = code_frames(np.stack(clean.lr), "h264", 23)
    assert all(np.array_equal(a, b) for a, b in zip(coded.lr, expect, strict=True))
    assert coded.lr_source.endswith("coded h264 crf 23")
    # scoring fewer frames does not change how the clip was coded
    short = load_lr(clips[0], lr_from_gt=False, max_frames=2, lr_codec=("h264", 23))
    assert np.array_equal(short.lr[1], coded.lr[1])


def test_coded_rows_score_lower_and_say_so(clips):
    clean = evaluate_bicubic(clips)
    coded = evaluate_bicubic(clips, lr_codec=("h264", 35))
    assert coded.psnr < clean.psnr - 0.1
    assert "coded h264 crf 35" in coded.clips[0].lr_source


def test_window_ablation_is_zero_for_a_single_frame_network_and_not_otherwise(clips):
    single = evaluate_model(CentreBicubic(), clips, ablate_window=True)
    assert single.window_gain_db == pytest.approx(0.0, abs=1e-9)
    multi = evaluate_model(WindowMean(), clips, ablate_window=True)
    assert multi.window_gain_db is not None and abs(multi.window_gain_db) > 0.01
    plain = evaluate_model(WindowMean(), clips)
    assert plain.window_gain_db is None
    assert plain.psnr == pytest.approx(multi.psnr)  # the ablation does not change the score


def test_cli_lr_codec_and_ablation(tmp_path):
    import json

    from typer.testing import CliRunner

    from satvsr_cli.cli import app

    data = make_dataset(tmp_path / "d", clips=(("000", 6, True, 3),))
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["benchmark", "--data", str(data / "eval"), "--model",
                                   "lgtd_small", "--lr-codec", "h265:30", "--ablate-window",
                                   "--json", str(out), "--markdown"])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["settings"]["lr_codec"].startswith("h265 crf 30")
    net = next(s for s in rep["summary"] if s["kind"] == "network")
    assert isinstance(net["window_gain_db"], float)
    assert "window gain (dB)" in res.stdout
    bad = CliRunner().invoke(app, ["benchmark", "--data", str(data / "eval"), "--lr-codec", "vp9"])
    assert bad.exit_code == 2 and "CODEC:CRF" in bad.output


def test_lr_codec_needs_8_bit(tmp_path):
    import imageio.v3 as iio

    root = tmp_path / "u16" / "eval"
    for sub in ("GT", "LR4x"):
        (root / sub / "000").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(5):
        iio.imwrite(root / "GT" / "000" / f"{t}.tif", rng.integers(0, 65535, (16, 16, 3), np.uint16))
        iio.imwrite(root / "LR4x" / "000" / f"{t}.tif", rng.integers(0, 65535, (4, 4, 3), np.uint16))
    with pytest.raises(InputError, match="8-bit"):
        load_lr(find_clips(root)[0], lr_from_gt=False, max_frames=None, lr_codec=("h264", 23))


def test_benchmark_takes_a_shipped_weights_id(tmp_path):
    from satvsr_cli.eval.run import evaluate
    from satvsr_cli.weights import shipped_ids

    data = make_dataset(tmp_path / "d", clips=(("000", 5, True, 3),))
    ref = shipped_ids()[0]
    rep = evaluate(data / "eval", weights=[ref], max_frames=1)
    assert len(rep.methods) == 2 and rep.methods[1].weights_sha256
