"""Tests for the training loop: exact resume, checkpoints, export, CLI errors, DDP, real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_data import make_jilin
from typer.testing import CliRunner

from satvsr_cli.errors import InputError, Interrupted, OutputError
from satvsr_cli.models import TINY_OVERRIDES
from satvsr_cli.train.config import RunConfig, from_dict, recipe
from satvsr_cli.train.loop import list_checkpoints, load_checkpoint, lr_at, prepare

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NET = "lgtd_small"
TINY = TINY_OVERRIDES[NET]


def _overrides(root: Path, val: Path | None = None, **extra) -> dict:
    o = {"data.sources": [str(root)], "data.patch": 8, "train.batch": 2, "train.iters": 6,
         "train.deterministic": True, "train.ckpt_every": 100, "train.log_every": 1,
         "train.warmup": 2, "train.ema": 0.9, "train.threads": 1, "model.kwargs": dict(TINY)}
    if val is not None:
        o.update({"data.val": [str(val)], "train.val_every": 4, "train.val_max_frames": 2})
    o.update(extra)
    return o


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    train = make_jilin(base / "train", {"000": 6, "001": 5}, size=(32, 40), lr=True, seed=1)
    val = make_jilin(base / "val", {"000": 5}, size=(32, 32), lr=False, seed=2)
    return train, val


def test_lr_schedules():
    t = recipe("msdtgp").train
    from dataclasses import replace

    t = replace(t, milestones=(24, 49))
    assert lr_at(0, t, 50) == pytest.approx(8e-5)
    assert lr_at(23, t, 50) == pytest.approx(8e-5)
    assert lr_at(24, t, 50) == pytest.approx(8e-6)
    assert lr_at(49, t, 50) == pytest.approx(8e-7)
    c = replace(recipe("cpu").train, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, c, 110) == pytest.approx(1e-4)
    assert lr_at(10, c, 110) == pytest.approx(1e-3)
    assert lr_at(109, c, 110) == pytest.approx(1e-4, rel=1e-2)


def test_resume_after_interrupt_gives_identical_weights(tmp_path, tiny_data):
    train, val = tiny_data
    # uninterrupted
    a = prepare(tmp_path / "a", model=NET, overrides=_overrides(train, val), log=_quiet)
    res_a = a.fit()
    assert res_a.iterations == 6
    # stopped by SIGINT after iteration 3, then resumed with the same command + --resume
    b = prepare(tmp_path / "b", model=NET, overrides=_overrides(train, val), log=_quiet)
    b.add_callback("on_iter_end", lambda tr, info: info["iter"] == 3
                   and os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Interrupted, match="interrupted at iteration 3/6"):
        b.fit()
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["iter_00000003.pt"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    b2 = prepare(tmp_path / "b", model=NET, overrides=_overrides(train, val), resume=True,
                 log=_quiet)
    res_b = b2.fit()
    assert res_b.iterations == 6
    ca = load_checkpoint(list_checkpoints(tmp_path / "a")[-1])
    cb = load_checkpoint(list_checkpoints(tmp_path / "b")[-1])
    for part in ("model", "ema"):
        assert ca[part].keys() == cb[part].keys()
        for k in ca[part]:
            assert torch.equal(ca[part][k], cb[part][k]), (part, k)
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert ca["best"] == cb["best"] and ca["best"]["iteration"] in (4, 6)
    # the resumed run's logs hold each iteration once
    rows = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    iters = [r["iter"] for r in rows if "loss" in r]
    assert iters == [1, 2, 3, 4, 5, 6]
    # the resolved config is saved in the run folder and in the checkpoint
    saved = from_dict(json.loads((tmp_path / "a" / "config.json").read_text()))
    assert isinstance(saved, RunConfig) and saved.train.iters == 6 and saved.train.val_every == 4
    assert from_dict(ca["config"]) == saved
    # best.pt really holds the best iteration's weights
    best = load_checkpoint(tmp_path / "a" / "checkpoints" / "best.pt")
    assert best["iteration"] == ca["best"]["iteration"]


def test_export_loads_with_load_weights(tmp_path, tiny_data):
    from satvsr_cli.weights import load_weights

    train, val = tiny_data
    res = prepare(tmp_path / "r", model=NET, overrides=_overrides(train, val, **{
        "train.iters": 4, "train.deterministic": False}), log=_quiet).fit()
    assert res.export is not None and res.export.name == f"{NET}.safetensors"
    net, manifest = load_weights(res.export, network=NET)
    ck = load_checkpoint(list_checkpoints(tmp_path / "r")[-1])
    for k, v in net.state_dict().items():
        assert torch.equal(v, ck["ema"][k]), k  # the EMA weights are exported
    assert all(manifest.config[k] == v for k, v in TINY.items())  # the build_model keywords
    assert manifest.extra["iterations"] == 4 and manifest.extra["wall_time_s"] >= 0
    assert "cpu" in manifest.extra["hardware"]
    assert manifest.recipe["recipe"] == "cpu" and manifest.recipe["weights"] == "ema"
    assert manifest.data["sources"][0]["kind"] == "jilin"
    (_label, m), = manifest.metrics["val"].items()
    assert np.isfinite(m["psnr"]) and m["frames"] == 2
    # the exported weights reproduce the validation score recorded in the manifest
    from satvsr_cli.eval import evaluate_model
    from satvsr_cli.jilin import find_clips

    again = evaluate_model(net, find_clips(val), max_frames=2)
    assert round(again.psnr, 4) == m["psnr"] and round(again.ssim, 5) == m["ssim"]
    # the network runs
    with torch.no_grad():
        y = net(torch.rand(1, 5, 3, 8, 8))
    assert y.shape == (1, 3, 32, 32)


def test_new_run_refuses_old_checkpoints_and_resume_refuses_changes(tmp_path, tiny_data):
    train, _ = tiny_data
    prepare(tmp_path / "r", model=NET, overrides=_overrides(train, None, **{"train.iters": 1}),
            log=_quiet).fit()
    with pytest.raises(OutputError, match="holds checkpoints"):
        prepare(tmp_path / "r", model=NET, overrides=_overrides(train), log=_quiet)
    with pytest.raises(InputError, match=r"train\.lr"):
        prepare(tmp_path / "r", overrides={"train.lr": 1.0}, resume=True, log=_quiet)
    # extending a finished run is allowed
    res = prepare(tmp_path / "r", overrides={"train.iters": 2}, resume=True, log=_quiet).fit()
    assert res.iterations == 2


def _cli(args: list[str]):
    from satvsr_cli.cli import app

    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("case", ["no_frames", "size_mismatch", "too_short", "missing"])
def test_bad_data_gives_one_line_errors(tmp_path, case):
    root = tmp_path / "ds"
    if case == "no_frames":
        (root / "GT" / "000").mkdir(parents=True)
        expect = "no frames"
    elif case == "size_mismatch":
        make_jilin(root, {"000": 5}, size=(32, 32), lr=True)
        import imageio.v3 as iio

        iio.imwrite(root / "LR4x" / "000" / "000.png", np.zeros((9, 8, 3), np.uint8))
        for t in range(1, 5):
            iio.imwrite(root / "LR4x" / "000" / f"{t:03d}.png", np.zeros((9, 8, 3), np.uint8))
        expect = "GT/LR size mismatch"
    elif case == "too_short":
        make_jilin(root, {"000": 3})
        expect = "fewer than the 5 needed"
    else:
        root = tmp_path / "nothing"
        expect = "no such file or folder"
    r = _cli(["train", "--model", NET, "--data", str(root), "--out", str(tmp_path / "run"),
              "--iters", "1"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_run_and_export_only(tmp_path, tiny_data):
    train, val = tiny_data
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[model.kwargs]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    out = tmp_path / "run"
    r = _cli(["train", "--model", NET, "--data", str(train), "--val-data", str(val),
              "--out", str(out), "--iters", "2", "--batch", "1", "--patch", "8", "--config",
              str(cfg), "--val-max-frames", "1", "--log-every", "1", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert f"weights: {out / 'export' / (NET + '.safetensors')}" in r.stdout
    assert "it 2" in r.stderr
    (out / "export" / f"{NET}.safetensors").unlink()
    r = _cli(["train", "--export-only", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "export" / f"{NET}.safetensors").is_file()


def test_ddp_two_processes_gloo(tmp_path, tiny_data):
    train, _ = tiny_data
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[model.kwargs]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "satvsr_cli", "train", "--model", NET, "--data", str(train), "--out", str(out),
           "--iters", "3", "--batch", "1", "--patch", "8", "--config", str(cfg),
           "--ckpt-every", "2", "--device", "cpu"]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=240,
                       cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-3000:]
    ck = load_checkpoint(list_checkpoints(out)[-1])
    assert ck["world_size"] == 2 and ck["iteration"] == 3
    assert (out / "export" / f"{NET}.safetensors").is_file()
    assert p.stdout.count("weights:") == 1  # rank 0 alone reports and exports


def test_real_jilin_smoke(tmp_path):
    root = SHARED / "satvideo" / "jilin1" / "train"
    if not (root / "GT").is_dir():
        pytest.skip(f"real data not found at {root}")
    res = prepare(tmp_path / "real", model=NET, overrides={
        "data.sources": [str(root)], "data.patch": 16, "train.batch": 2, "train.iters": 2,
        "train.threads": 1,
        "model.kwargs": dict(TINY)}, log=_quiet).fit()
    assert res.iterations == 2 and res.export is not None and res.export.is_file()
