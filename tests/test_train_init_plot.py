"""`satvsr train --init WEIGHTS` (fine-tuning) and the log.png written beside log.csv."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_data import make_jilin
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.errors import WeightsError
from satvsr_cli.models import TINY_OVERRIDES, build_model
from satvsr_cli.train.loop import list_checkpoints, load_checkpoint, prepare
from satvsr_cli.weights import load_weights, read_manifest, save_weights, sha256_file

NET = "lgtd_small"
TINY = TINY_OVERRIDES[NET]


def _quiet(_: str) -> None:
    pass


def _overrides(root, val=None, **extra) -> dict:
    o = {"data.sources": [str(root)], "data.patch": 8, "train.batch": 2, "train.iters": 2,
         "train.ckpt_every": 100, "train.log_every": 1, "train.threads": 1,
         "train.ema": 0.9, "model.kwargs": dict(TINY)}
    if val is not None:
        o.update({"data.val": [str(val)], "train.val_every": 1, "train.val_max_frames": 2})
    o.update(extra)
    return o


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    train = make_jilin(base / "train", {"000": 5}, size=(32, 32), lr=True, seed=1)
    val = make_jilin(base / "val", {"000": 5}, size=(32, 32), lr=False, seed=2)
    return train, val


@pytest.fixture()
def init_weights(tmp_path):
    torch.manual_seed(7)
    model = build_model(NET, **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)  # far from any fresh initialisation
    path = save_weights(model, tmp_path / "start.safetensors", network=NET, config=dict(TINY),
                        data={}, recipe={}, metrics={})
    return model, path


def test_init_starts_from_the_weights_and_is_recorded(tmp_path, data, init_weights):
    train, _ = data
    model, path = init_weights
    res = prepare(tmp_path / "run", model=NET, log=_quiet, overrides=_overrides(
        train, **{"train.init": str(path), "train.lr": 1e-9, "train.warmup": 0})).fit()
    net, manifest = load_weights(res.export)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v, atol=1e-6, rtol=0)
    assert manifest.extra["init"]["sha256"] == sha256_file(path)
    assert manifest.extra["init"]["ref"] == str(path)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["init"] == str(path)
    # without --init the same run starts elsewhere (the comparison above can fail)
    res2 = prepare(tmp_path / "run2", model=NET, log=_quiet, overrides=_overrides(
        train, **{"train.lr": 1e-9, "train.warmup": 0})).fit()
    fresh = load_weights(res2.export)[0].state_dict()
    assert any((fresh[k] - v).abs().max() > 1e-3 for k, v in model.state_dict().items())
    assert "init" not in load_weights(res2.export)[1].extra
    # a resumed run keeps the record
    ck = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])
    assert ck["init"]["path"] == str(path.resolve())


def test_init_must_match_network_and_configuration(tmp_path, data, init_weights):
    train, _ = data
    _, path = init_weights
    other = dict(TINY, nf=12)
    trainer = prepare(tmp_path / "a", model=NET, log=_quiet, overrides=_overrides(
        train, **{"train.init": str(path), "model.kwargs": other}))
    with pytest.raises(WeightsError, match=r"configuration differs .*nf 8 vs 12"):
        trainer.fit()
    # an option without tensors may change: fine-tuning adapts to it, and the change is recorded
    flipped = dict(TINY, local_upsample=not TINY.get("local_upsample", True))
    res = prepare(tmp_path / "d", model=NET, log=_quiet, overrides=_overrides(
        train, **{"train.init": str(path), "model.kwargs": flipped})).fit()
    changes = load_weights(res.export)[1].extra["init"]["config_changes"]
    assert list(changes) == ["local_upsample"]
    trainer = prepare(tmp_path / "b", model="msdtgp_small", log=_quiet, overrides=_overrides(
        train, **{"train.init": str(path), "model.kwargs": TINY_OVERRIDES["msdtgp_small"]}))
    with pytest.raises(WeightsError, match="holds 'lgtd_small' weights"):
        trainer.fit()
    trainer = prepare(tmp_path / "c", model=NET, log=_quiet, overrides=_overrides(
        train, **{"train.init": "no_such_weights"}))
    with pytest.raises(WeightsError, match="no such weights file or shipped id"):
        trainer.fit()


def test_cli_init_from_a_shipped_id_infers_the_model(tmp_path, data, monkeypatch):
    monkeypatch.delenv("SATVSR_WEIGHTS_DIR", raising=False)
    train, _ = data
    out = tmp_path / "ft"
    result = CliRunner().invoke(app, [
        "train", "--init", "lgtd_small.v1", "--data", str(train), "--out", str(out),
        "--iters", "1", "--batch", "1", "--patch", "8", "--threads", "1", "--lr", "1e-9"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out / "export" / "lgtd_small.safetensors")
    assert manifest.network == "lgtd_small"
    assert manifest.extra["init"]["sha256"] == read_manifest("lgtd_small.v1").sha256
    assert json.loads((out / "config.json").read_text())["train"]["init"] == "lgtd_small.v1"
    bad = CliRunner().invoke(app, ["train", "--init", "lgtd_small.v1", "--model", "msdtgp_small",
                                   "--data", str(train), "--out", str(tmp_path / "x"),
                                   "--iters", "1", "--patch", "8", "--batch", "1"])
    assert bad.exit_code == WeightsError.exit_code
    assert "holds 'lgtd_small' weights" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "x" / "config.json").exists()  # nothing written before the check


def test_training_writes_log_png(tmp_path, data):
    train, val = data
    prepare(tmp_path / "run", model=NET, log=_quiet, overrides=_overrides(train, val)).fit()
    png = tmp_path / "run" / "log.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(png).size[0] >= 400
    assert not list((tmp_path / "run").glob("*.partial"))


def test_no_matplotlib_means_a_log_line_and_no_png(tmp_path, data, monkeypatch):
    from satvsr_cli.train import plot

    monkeypatch.setattr(plot, "have_matplotlib", lambda: False)
    lines: list[str] = []
    train, val = data
    prepare(tmp_path / "run", model=NET, log=lines.append,
            overrides=_overrides(train, val)).fit()
    assert not (tmp_path / "run" / "log.png").exists()
    assert sum("matplotlib is not installed" in s for s in lines) == 1
    assert plot.plot_log(tmp_path / "run" / "log.csv", tmp_path / "x.png") is None
