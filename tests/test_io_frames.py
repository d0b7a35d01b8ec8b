"""Frame folders: natural order, 8/16-bit and float PNG/TIFF round trips, checks, resume verification."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.io.frames import (
    FramesSink,
    FramesSource,
    frame_format_for,
    list_frame_files,
    probe_frames,
    read_image,
    verify_image,
    write_image,
)


@pytest.mark.parametrize(("dtype", "fmt", "c"), [
    ("uint8", "png", 3), ("uint16", "png", 3), ("uint16", "png", 1), ("uint8", "tif", 4),
    ("uint16", "tif", 3), ("float32", "tif", 3), ("float64", "tif", 2),
])
def test_image_round_trip_is_exact(tmp_path, dtype, fmt, c):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(size=(13, 17, c)).astype(dtype)
    else:
        data = rng.integers(0, np.iinfo(dtype).max + 1, size=(13, 17, c)).astype(dtype)
    path = tmp_path / f"x.{fmt}"
    write_image(path, data, fmt)
    back = read_image(path)
    assert back.dtype == np.dtype(dtype) and back.shape == data.shape
    np.testing.assert_array_equal(back, data)  # 16-bit colour PNG is not reduced to 8 bits
    assert verify_image(path, 17, 13, c, dtype)
    assert not verify_image(path, 18, 13, c, dtype)
    assert not list(tmp_path.glob("*.aux.xml"))


def test_palette_png_is_expanded_to_rgb(tmp_path):
    idx = np.arange(20, dtype=np.uint8).reshape(4, 5)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    im.save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    assert rgb.shape == (4, 5, 3)
    np.testing.assert_array_equal(rgb[..., 0], idx)
    np.testing.assert_array_equal(rgb[..., 1], 255 - idx)


def test_natural_order_and_glob(tmp_path):
    for name in ["frame10.png", "frame2.png", "frame1.png", "notes.txt"]:
        if name.endswith(".png"):
            write_image(tmp_path / name, np.zeros((4, 4, 3), np.uint8), "png")
        else:
            (tmp_path / name).write_text("x")
    assert [p.name for p in list_frame_files(tmp_path)] == ["frame1.png", "frame2.png", "frame10.png"]
    assert [p.name for p in list_frame_files(str(tmp_path / "frame1*.png"))] == [
        "frame1.png", "frame10.png"]
    info = probe_frames(tmp_path)
    assert info.n_frames == 3 and info.frame_names == ("frame1", "frame2", "frame10")
    frames = list(FramesSource(tmp_path, info).frames(start=1))
    assert [f.index for f in frames] == [1, 2]


def test_mismatched_empty_and_unreadable_folders(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    write_image(a / "0.png", np.zeros((4, 4, 3), np.uint8), "png")
    write_image(a / "1.png", np.zeros((4, 5, 3), np.uint8), "png")
    with pytest.raises(InputError, match=r"1\.png.*differs"):
        probe_frames(a)
    b = tmp_path / "b"
    b.mkdir()
    with pytest.raises(InputError, match="no image frames"):
        probe_frames(b)
    c = tmp_path / "c"
    c.mkdir()
    (c / "0.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=r"unreadable|damaged"):
        probe_frames(c)
    with pytest.raises(InputError, match="no such file"):
        list_frame_files(tmp_path / "missing")
    d = tmp_path / "d"
    d.mkdir()
    write_image(d / "0.png", np.zeros((40, 40, 3), np.uint8), "png")
    (d / "0.png").write_bytes((d / "0.png").read_bytes()[:-30])
    with pytest.raises(InputError, match="truncated"):  # GDAL alone would read zeros
        probe_frames(d)


def test_frame_formats():
    assert frame_format_for("uint8", None, ".png") == "png"
    assert frame_format_for("uint16", None, None) == "png"
    assert frame_format_for("uint16", None, ".tif") == "tif"
    assert frame_format_for("float32", None, ".png") == "tif"
    with pytest.raises(OutputError, match="PNG cannot"):
        frame_format_for("float32", "png", None)


def test_sink_resume_keeps_verified_files_only(tmp_path):
    out = tmp_path / "out"
    names = {i: f"{i:03d}" for i in range(5)}

    def make(resume):
        return FramesSink(out, name_of=lambda i: names[i],
                          index_of=lambda s: int(s) if s.isdigit() else None,
                          wanted=lambda i: 1 <= i < 5, width=8, height=6, bands=3,
                          dtype="uint8", fmt="png", resume=resume)

    s = make(False)
    for i in range(1, 4):
        s.write(i, np.full((6, 8, 3), i, np.uint8), None)
    f2 = s.file_for(2)
    f2.write_bytes(f2.read_bytes()[:-20])  # damaged
    (out.with_name("out.partial") / "stray.png").write_bytes(b"x")
    s2 = make(True)
    assert s2.done() == {1, 3}
    assert not f2.exists() and not (out.with_name("out.partial") / "stray.png").exists()
    s2.write(2, np.full((6, 8, 3), 2, np.uint8), None)
    s2.write(4, np.full((6, 8, 3), 4, np.uint8), None)
    assert s2.commit() == out
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png", "003.png", "004.png"]
    assert not out.with_name("out.partial").exists()
