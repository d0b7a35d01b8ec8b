import json

import pytest
import torch

from satvsr_cli.errors import ModelError, WeightsError
from satvsr_cli.models import build_model, tiny_overrides
from satvsr_cli.weights import (
    default_weights,
    load_weights,
    read_manifest,
    resolve_model,
    save_weights,
    sha256_file,
    shipped_for,
)

NAME = "lgtd_small"


@pytest.fixture()
def entry(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_overrides(NAME)
    model = build_model(NAME, **cfg)
    path = save_weights(model, tmp_path / "w.safetensors", network=NAME, config=cfg,
                        data={"roots": ["synthetic"]}, recipe={"iters": 1},
                        metrics={"psnr": 1.0}, extra={"hardware": "test"})
    return model, path, cfg


def test_round_trip_is_exact_and_manifest_complete(entry):
    model, path, cfg = entry
    manifest = json.loads(path.with_suffix(".json").read_text())
    for key in ("network", "config", "scale", "frames", "value_range", "sha256", "data", "recipe",
                "metrics"):
        assert key in manifest
    assert manifest["sha256"] == sha256_file(path)
    loaded, m = load_weights(path)
    assert m.network == NAME and {k: m.config[k] for k in cfg} == cfg
    assert m.config["residual"] is False  # the full keyword set is recorded, not just overrides
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 5, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # the manifest path works as well
    assert load_weights(path.with_suffix(".json"))[1].sha256 == m.sha256


def test_corrupt_file_is_refused(entry):
    _, path, _ = entry
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(path)


def test_config_mismatch_is_one_line(entry):
    _, path, cfg = entry
    mpath = path.with_suffix(".json")
    raw = json.loads(mpath.read_text())
    raw["config"] = {**cfg, **{k: v * 2 for k, v in cfg.items() if isinstance(v, int) and v > 1}}
    mpath.write_text(json.dumps(raw))
    with pytest.raises(WeightsError) as exc:
        load_weights(path)
    assert "\n" not in str(exc.value)


def test_wrong_network_and_missing_manifest(entry, tmp_path):
    _, path, _ = entry
    with pytest.raises(WeightsError, match="not 'msdtgp_small'"):
        load_weights(path, network="msdtgp_small")
    with pytest.raises(WeightsError, match="manifest not found"):
        load_weights(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match=r"\.safetensors"):
        load_weights(tmp_path / "model.pth")


def test_resolve_model_order(entry, tmp_path, monkeypatch):
    _, path, _ = entry
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(tmp_path))
    assert default_weights() is None
    with pytest.raises(WeightsError, match="no default weights"):
        resolve_model(None, None)
    (tmp_path / "DEFAULT").write_text("w\n")
    assert default_weights() == path
    _, name, sha = resolve_model(None, None)
    assert NAME in name and sha == sha256_file(path)
    assert shipped_for(NAME) == [path]
    _, _, sha2 = resolve_model(NAME, None)
    assert sha2 == sha
    with pytest.raises(WeightsError, match="no shipped weights"):
        resolve_model("msdtgp_small", None)
    net, name, sha3 = resolve_model("msdtgp_small", None, allow_random=True)
    assert sha3 is None and "random" in name and not net.training
    with pytest.raises(ModelError):
        resolve_model("no_such_net", None)
    assert read_manifest(path).path == path


def test_shipped_ids_resolve_with_and_without_version(entry, tmp_path, monkeypatch):
    from satvsr_cli.weights import find_weights, lookup_shipped, shipped_ids, weights_id

    _, path, _ = entry
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for v in (1, 2, 10):
        for suffix in (".safetensors", ".json"):
            (shipped / f"net.v{v}{suffix}").write_bytes(path.with_suffix(suffix).read_bytes())
    raw = json.loads((shipped / "net.v2.json").read_text())
    raw["weights_file"] = "net.v2.safetensors"
    (shipped / "net.v2.json").write_text(json.dumps(raw))
    (shipped / "DEFAULT").write_text("net.v2\n")
    monkeypatch.setenv("SATVSR_WEIGHTS_DIR", str(shipped))
    monkeypatch.chdir(tmp_path)
    assert shipped_ids() == ["net.v1", "net.v10", "net.v2"]
    assert lookup_shipped("net") == shipped / "net.v10.safetensors"  # numeric, not string order
    assert find_weights("net.v1") == shipped / "net.v1.safetensors"
    assert default_weights() == shipped / "net.v2.safetensors"
    assert weights_id(default_weights()) == "net.v2"
    _, m = load_weights("net.v2")
    assert m.path == shipped / "net.v2.safetensors" and m.network == NAME
    # a file of that name in the working directory wins over the id
    assert find_weights(str(path)) == path
    with pytest.raises(WeightsError, match=r"no such weights file or shipped id \(shipped: net"):
        load_weights("other")


def test_package_ships_its_weights(monkeypatch):
    monkeypatch.delenv("SATVSR_WEIGHTS_DIR", raising=False)
    from satvsr_cli.weights import default_weights as dflt
    from satvsr_cli.weights import shipped_ids, weights_dir

    assert weights_dir().parent.name == "satvsr_cli"
    assert {"lgtd_small.v1", "lgtd_small.v2", "lgtd_base.v1", "msdtgp_small.v1"} <= set(shipped_ids())
    assert dflt() is not None and dflt().name == "lgtd_small.v2.safetensors"
    for wid in ("lgtd_small", "lgtd_base", "msdtgp_small.v1"):
        assert read_manifest(wid).sha256 == sha256_file(read_manifest(wid).path)
