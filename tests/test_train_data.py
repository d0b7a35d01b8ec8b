"""Tests for training configs, the Jilin/still-image datasets, augmentation and synthetic drift."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from satvsr_cli.errors import InputError
from satvsr_cli.resize import imresize
from satvsr_cli.train.config import (
    DataConfig,
    RunConfig,
    SynthConfig,
    apply_sets,
    build_config,
    from_dict,
    parse_source,
    recipe,
    to_dict,
)
from satvsr_cli.train.data import ImageSource, TrainData, augment
from satvsr_cli.train.synth import synth_window


def _texture(h: int, w: int, seed: int = 0, smooth: float = 2.0) -> np.ndarray:
    """A smooth random RGB texture (uint8): low-passed noise, so shifts are well defined."""
    rng = np.random.default_rng(seed)
    f = np.fft.fft2(rng.normal(size=(h, w, 3)), axes=(0, 1))
    fy = np.fft.fftfreq(h)[:, None, None]
    fx = np.fft.fftfreq(w)[None, :, None]
    f *= np.exp(-((fy**2 + fx**2) * (2 * np.pi * smooth) ** 2) / 2)
    img = np.real(np.fft.ifft2(f, axes=(0, 1)))
    img = (img - img.min()) / (img.max() - img.min())
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def make_jilin(root: Path, clips: dict[str, int], size=(48, 64), lr: bool = False, seed=0) -> Path:
    """A Jilin-layout folder with random GT frames (and exact LR4x when ``lr``)."""
    rng = np.random.default_rng(seed)
    for name, n in clips.items():
        d = root / "GT" / name
        d.mkdir(parents=True)
        for t in range(n):
            gt = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
            iio.imwrite(d / f"{t:03d}.png", gt)
            if lr:
                (root / "LR4x" / name).mkdir(parents=True, exist_ok=True)
                iio.imwrite(root / "LR4x" / name / f"{t:03d}.png", imresize(gt, 0.25))
    return root


def _cfg(sources: list[str], **data_kw) -> RunConfig:
    cfg = build_config(model="lgtd_small", recipe_name="cpu")
    data = replace(cfg.data, sources=tuple(parse_source(s) for s in sources), **data_kw)
    return replace(cfg, data=data)


# --------------------------------------------------------------------------- config


def test_paper_recipes_match_models_md():
    m = recipe("msdtgp")
    assert (m.train.lr, m.train.betas, m.train.eps, m.train.batch, m.data.patch) == (
        8e-5, (0.9, 0.999), 1e-8, 1, 32)
    assert (m.train.schedule, m.train.milestone_epochs, m.train.gamma, m.train.epochs) == (
        "multistep", (24, 49), 0.1, 50)
    assert (m.train.loss, m.train.ema, m.train.seed) == ("l1", 0.0, 123)
    assert (m.data.vflip, m.data.hflip, m.data.rot180, m.data.rot90, m.data.reverse) == (
        True, True, True, False, False)
    g = recipe("lgtd")
    assert (g.train.lr, g.train.batch, g.data.patch, g.train.gamma) == (1e-4, 4, 64, 0.5)
    assert g.train.milestone_epochs == (9, 19, 29, 39, 49)
    with pytest.raises(InputError, match="unknown recipe"):
        recipe("nope")


def test_default_recipe_follows_the_model():
    assert build_config(model="msdtgp").recipe == "msdtgp"
    assert build_config(model="lgtd_lite").recipe == "lgtd"
    assert build_config(model="lgtd_small").recipe == "cpu"


def test_config_file_then_overrides_then_sets(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        'recipe = "lgtd"\n[train]\nlr = 3e-4\nbatch = 2\n[data]\npatch = 16\n'
        '[[data.sources]]\npath = "a"\nweight = 2\n[[data.sources]]\npath = "b"\ngsd_factor = 3\n'
        "[model.kwargs]\nnf = 8\n"
    )
    cfg = build_config(model="lgtd_small", config_file=f, overrides={"train.batch": 3},
                       sets=["train.lr=5e-4", "synth.bands=3,2,1", "model.groups=2"])
    assert cfg.recipe == "lgtd" and cfg.train.gamma == 0.5  # recipe from the file
    assert cfg.train.lr == 5e-4 and cfg.train.batch == 3 and cfg.data.patch == 16
    assert [s.path for s in cfg.data.sources] == ["a", "b"]
    assert cfg.data.sources[0].weight == 2 and cfg.data.sources[1].gsd_factor == 3
    assert cfg.synth.bands == (3, 2, 1)
    assert cfg.model.kwargs == {"nf": 8, "groups": 2}
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg  # round trip via JSON


def test_config_errors_are_one_line(tmp_path):
    cfg = recipe("cpu")
    for bad, msg in [("train.lrr=1", "unknown config key 'train.lrr'"),
                     ("train.batch=two", "expected an integer"),
                     ("train.loss=l3", "not one of"),
                     ("noequals", "KEY=VALUE")]:
        with pytest.raises(InputError, match=msg) as ei:
            apply_sets(cfg, [bad])
        assert "\n" not in str(ei.value)
    f = tmp_path / "bad.toml"
    f.write_text("[train\n")
    with pytest.raises(InputError, match="cannot parse"):
        build_config(model="lgtd_small", config_file=f)


def test_parse_source_spec():
    s = parse_source("/x/ucmerced,gsd=3,weight=0.5,bands=3:2:1,stretch=percentile,kind=images")
    assert (s.path, s.gsd_factor, s.weight, s.bands, s.stretch, s.kind) == (
        "/x/ucmerced", 3.0, 0.5, (3, 2, 1), "percentile", "images")
    assert parse_source("/a,b/c").path == "/a,b/c"  # commas without key=value stay in the path


# --------------------------------------------------------------------------- Jilin clips


def _locate(hay: np.ndarray, needle: np.ndarray) -> tuple[int, int]:
    """Top-left of ``needle`` inside ``hay`` (exact match, unique for random content)."""
    p = needle.shape[0]
    for y in range(hay.shape[0] - p + 1):
        for x in range(hay.shape[1] - p + 1):
            if np.array_equal(hay[y : y + p, x : x + p], needle):
                return y, x
    raise AssertionError("patch not found")


@pytest.mark.parametrize("cache", ["memory", "disk"])
@pytest.mark.parametrize("with_lr", [False, True])
def test_crops_share_position_and_match_gt_alignment(tmp_path, with_lr, cache):
    root = make_jilin(tmp_path / "ds", {"000": 6, "001": 5}, lr=with_lr)
    cfg = _cfg([str(root)], patch=6, vflip=False, hflip=False, rot180=False, cache=cache)
    data = TrainData(cfg)
    src = data.sources[0]
    assert src.in_memory == (cache == "memory")
    assert len(src) == 11 and data.n_samples == 11
    for it in range(4):
        for _s, item, rng in data.samples(it):
            c, t = src.items[item]
            lr, gt = src.window(item, rng, 5, cfg.data, cfg.synth)
            full_gt = np.stack([iio.imread(p) for p in sorted((root / "GT" / src.names[c]).iterdir())])
            full_lr = np.stack([imresize(f, 0.25) for f in full_gt])  # the exact LR generator
            y, x = _locate(full_lr[t], lr[2])
            # every frame of the window uses the same crop position (centre padding at the ends)
            from satvsr_cli.engine.windows import frame_indices

            for k, j in enumerate(frame_indices(t, len(full_gt), 5, "centre")):
                assert np.array_equal(lr[k], full_lr[j, y : y + 6, x : x + 6])
            assert np.array_equal(gt, full_gt[t, 4 * y : 4 * y + 24, 4 * x : 4 * x + 24])
            # and the LR patch is the bicubic of the GT patch away from the patch border
            assert np.array_equal(imresize(gt, 0.25)[2:-2, 2:-2], lr[2][2:-2, 2:-2])


def test_disk_and_memory_modes_give_the_same_batches(tmp_path):
    root = make_jilin(tmp_path / "ds", {"000": 7}, size=(40, 44))  # GT only: LR made from GT
    batches = []
    for cache in ("memory", "disk"):
        data = TrainData(_cfg([str(root)], patch=5, cache=cache))
        batches.append([data.batch_arrays(it) for it in range(3)])
    for (la, ga), (lb, gb) in zip(*batches, strict=True):
        assert np.array_equal(la, lb) and np.array_equal(ga, gb)


def test_one_epoch_visits_every_frame_once(tmp_path):
    root = make_jilin(tmp_path / "ds", {"000": 7, "001": 5}, size=(32, 32))
    cfg = _cfg([str(root)], patch=4)
    cfg = replace(cfg, train=replace(cfg.train, batch=3))
    data = TrainData(cfg, world_size=2)
    assert data.iters_per_epoch(3) == 2
    seen = [item for it in range(2) for r in range(2) for _, item, _ in data.samples(it, r)]
    assert sorted(seen) == list(range(12))  # 12 samples = one epoch, across both ranks


@pytest.mark.parametrize("seed", range(6))
def test_augmentations_keep_lr_and_gt_consistent(seed):
    rng = np.random.default_rng(seed)
    gt_full = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    lr_c = imresize(gt_full, 0.25)
    lr = np.stack([lr_c + np.uint8(k) for k in range(5)])  # frames told apart by an offset
    cfg = DataConfig(rot90=True, reverse=True)
    la, ga = augment(lr, gt_full, np.random.default_rng(seed), cfg)
    c = np.asarray(la[2]) - np.uint8(2)
    assert np.array_equal(imresize(np.ascontiguousarray(ga), 0.25)[2:-2, 2:-2], c[2:-2, 2:-2])
    offsets = [int(np.asarray(la[k]).astype(int)[0, 0, 0] - c.astype(int)[0, 0, 0]) % 256
               for k in range(5)]
    assert offsets in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0])


def test_patch_larger_than_frames_is_an_error(tmp_path):
    root = make_jilin(tmp_path / "ds", {"000": 5}, size=(32, 32))
    with pytest.raises(InputError, match="smaller than the LR patch"):
        TrainData(_cfg([str(root)], patch=16))


def test_eval_split_is_never_picked_for_training(tmp_path):
    make_jilin(tmp_path / "ds" / "eval", {"000": 5})
    with pytest.raises(InputError, match="no GT/ folder for training"):
        TrainData(_cfg([str(tmp_path / "ds")], patch=4, ), )


# --------------------------------------------------------------------------- synthetic clips


def test_synthetic_drift_is_measured_by_phase_correlation():
    reg = pytest.importorskip("skimage.registration")
    img = _texture(400, 400, seed=1, smooth=3.0)
    cfg = SynthConfig(drift="constant", max_speed=2.0, object_prob=0.0)
    rng = np.random.default_rng(5)
    errs, speeds = [], []
    for _ in range(6):
        lr, gt, drift = synth_window(img, rng, patch=64, frames=5, cfg=cfg)
        assert lr.shape == (5, 64, 64, 3) and gt.shape == (256, 256, 3)
        assert np.allclose(drift[2], 0)
        for t in range(4):
            # content moves by -(D[t+1] - D[t]): shift that registers frame t+1 onto frame t
            shift, _, _ = reg.phase_cross_correlation(
                lr[t].astype(float).mean(-1), lr[t + 1].astype(float).mean(-1),
                upsample_factor=50, normalization=None)
            expected = drift[t + 1] - drift[t]
            errs.append(np.abs(shift - expected).max())
            speeds.append(np.hypot(*expected))
    assert max(speeds) > 0.5  # the test exercises real sub-pixel motion
    assert max(errs) < 0.1, errs


def test_synthetic_centre_frame_matches_gt_and_objects_move():
    img = _texture(300, 300, seed=2)
    cfg = SynthConfig(drift="mixed", object_prob=1.0, max_objects=3, object_speed=1.0)
    lr, gt, _ = synth_window(img, np.random.default_rng(0), patch=32, frames=5, cfg=cfg)
    # the centre LR frame is the exact bicubic ×1/4 of the GT (with real context at the border)
    assert np.array_equal(imresize(gt, 0.25)[2:-2, 2:-2], lr[2][2:-2, 2:-2])
    still, _, _ = synth_window(img, np.random.default_rng(0), patch=32, frames=5,
                               cfg=SynthConfig(max_speed=0.0, jitter=0.0, object_prob=0.0))
    assert np.array_equal(still[0], still[4])  # no drift, no objects: identical frames


def test_image_source_gsd_nodata_and_patch_fit(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from affine import Affine

    # a uint16 GeoTIFF with a nodata border 20 px wide, and a small 8-bit PNG
    a = (_texture(200, 200, seed=3)[..., 0].astype(np.uint16) * 40 + 100)
    a[:20] = 0
    tif = tmp_path / "imgs" / "g.tif"
    tif.parent.mkdir()
    with rasterio.open(tif, "w", driver="GTiff", width=200, height=200, count=1, dtype="uint16",
                       nodata=0, crs="EPSG:32631", transform=Affine(0.5, 0, 0, 0, -0.5, 0)) as ds:
        ds.write(a, 1)
    iio.imwrite(tmp_path / "imgs" / "small.png", _texture(90, 90, seed=4))
    cfg = _cfg([str(tmp_path / "imgs") + ",gsd=1"], patch=32)
    logs: list[str] = []
    src = ImageSource(cfg.data.sources[0], cfg.synth, log=logs.append)
    assert len(src) == 2
    src.set_patch(32, 4)
    assert src.patch == 16  # (90 − 16) // 4 = 18 → 16, the largest multiple of 4 that fits
    geo = next(s for s in src.stills if s.path.suffix == ".tif")
    assert geo.mask is not None and not geo.mask[:20].any()
    assert geo.img.dtype == np.uint8 and geo.img.shape == (200, 200, 3)
    assert np.array_equal(geo.img[..., 0], geo.img[..., 2])  # grey replicated to RGB
    # regions are only placed where the centre frame is free of nodata: rows ≥ 20
    size = 4 * 16 + 16
    assert geo.positions is not None
    tops = geo.positions // (200 - size + 1)
    assert tops.min() == 20 and tops.max() == 200 - size
    lr, gt = src.window(src.stills.index(geo), np.random.default_rng(0), 5, cfg.data, cfg.synth)
    assert lr.shape == (5, 16, 16, 3) and gt.shape == (64, 64, 3)
    # GSD factor 2 halves the image
    cfg2 = _cfg([str(tmp_path / "imgs" / "g.tif") + ",gsd=2"], patch=8)
    src2 = ImageSource(cfg2.data.sources[0], cfg2.synth)
    assert src2.stills[0].img.shape == (100, 100, 3)
