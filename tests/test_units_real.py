"""Issue 9 §1: the result does not depend on the units of the data.

The clean LR frames of a real clip written as uint16 GeoTIFFs in three units (v, 8v + 300 and
12v + 900 with nodata 0), upscaled with the shipped default weights and mapped back to 8-bit
units, score within 0.05 dB of each other, and all beat bicubic clearly.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.run import upscale
from satvsr_cli.resize import imresize

CLIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "satvideo" / "taipei" / "eval"
N = 5


def _psnr(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    d = (pred.astype(np.float64) - gt.astype(np.float64))[valid]
    return float(10 * np.log10(255.0**2 / np.mean(d * d)))


@pytest.mark.skipif(not CLIP.is_dir(), reason="../shared/data (taipei/eval) is absent")
def test_linear_change_of_units_changes_psnr_by_less_than_005_db(tmp_path):
    lr_files = sorted((CLIP / "LR4x" / "000").glob("*.png"))[:N]
    gt_files = sorted((CLIP / "GT" / "000").glob("*.png"))[:N]
    lr = np.stack([iio.imread(p)[..., :3] for p in lr_files]).astype(np.float64)
    gt = np.stack([iio.imread(p)[..., :3] for p in gt_files]).astype(np.float64)
    hole = np.zeros(lr.shape[1:3], bool)
    hole[:6, :6] = True  # a nodata corner for the third variant
    scores = {}
    for name, a, b, nodata in (("v", 1, 0, None), ("8v+300", 8, 300, None),
                               ("12v+900", 12, 900, 0)):
        folder = tmp_path / name
        folder.mkdir()
        for t in range(N):
            data = np.rint(a * lr[t] + b).astype(np.uint16).transpose(2, 0, 1)
            if nodata is not None:
                data[:, hole] = nodata
            with rasterio.open(folder / f"{t:03d}.tif", "w", driver="GTiff", width=data.shape[2],
                               height=data.shape[1], count=3, dtype="uint16", nodata=nodata,
                               crs="EPSG:32651", transform=Affine(4, 0, 300000, 0, -4, 2770000)) as ds:
                ds.write(data)
        out = tmp_path / f"{name}_x4"
        upscale(UpscaleConfig.from_flags(input=str(folder), output=str(out)))
        valid = np.ones(gt.shape[1:3], bool)
        if nodata is not None:
            valid[: 6 * 4, : 6 * 4] = False
        vals = []
        for t, f in enumerate(sorted(out.glob("*.tif"))):
            with rasterio.open(f) as ds:
                back = (ds.read().transpose(1, 2, 0).astype(np.float64) - b) / a
            vals.append(_psnr(back, gt[t], valid))
        scores[name] = float(np.mean(vals))
    bicubic = float(np.mean([_psnr(np.clip(imresize(lr[t], 4), 0, 255), gt[t],
                                   np.ones(gt.shape[1:3], bool)) for t in range(N)]))
    print("units:", scores, "bicubic:", round(bicubic, 3))
    spread = max(scores.values()) - min(scores.values())
    assert spread < 0.05, scores
    assert min(scores.values()) > bicubic + 1.0, (scores, bicubic)
