"""`satvsr probe` prints map coordinates at full precision (not ``%g``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from satvsr_cli.cli import app
from satvsr_cli.cli.probe import full_number

SOLARIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "geotiff" / "spacenet_solaris"
ENV = {"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}


def test_full_number():
    assert full_number(5747657.4158721585) == "5747657.4158721585"
    assert full_number(10.0) == "10" and full_number(-9999.0) == "-9999"
    assert full_number(3.4028234663852886e38) == "3.4028234663852886e+38"
    assert float(full_number(1.0000483155950517)) == 1.0000483155950517
    assert full_number(float("nan")) == "nan"


def test_probe_prints_the_transform_in_metres(tmp_path):
    tif = tmp_path / "utm.tif"
    tr = Affine(1.0000483155950517, 0.0, 593270.2919143771, 0.0, -1.0000483155950517,
                5747657.4158721585)
    with rasterio.open(tif, "w", driver="GTiff", width=16, height=12, count=3, dtype="uint8",
                       crs=CRS.from_epsg(32631), transform=tr, nodata=0) as ds:
        ds.write(np.full((3, 12, 16), 9, np.uint8))
    r = CliRunner().invoke(app, ["probe", str(tif), "--model", "lgtd_small"], env=ENV)
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.stdout.splitlines() if "transform" in ln)
    assert ("1.0000483155950517, 0, 593270.2919143771, 0, -1.0000483155950517, "
            "5747657.4158721585") in line
    assert "e+" not in line


@pytest.mark.skipif(not (SOLARIS / "ms1.tif").exists(), reason="shared data not present")
def test_probe_real_geotiff_keeps_metres():
    r = CliRunner().invoke(app, ["probe", str(SOLARIS / "ms1.tif"), "--model", "lgtd_small",
                                 "--value-range", "0,2047"], env=ENV)
    assert r.exit_code == 0, r.output
    assert "593270.2919143771" in r.stdout and "5747657.4158721585" in r.stdout
    assert "5.74766e+06" not in r.stdout
