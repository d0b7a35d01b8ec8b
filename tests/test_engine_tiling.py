"""Tile planning and blending: coverage, size multiples, padding rule, strip stitching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from satvsr_cli.engine.infer import StripStitcher
from satvsr_cli.engine.tiling import (
    axis_weights,
    blend_weights,
    coverage,
    pad_indices,
    padded_size,
    plan_tiles,
)
from satvsr_cli.models import pad_to_multiple

SIZES = [(37, 45), (64, 64), (5, 7), (100, 33), (16, 160)]


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "multiple"),
    list(itertools.product(SIZES, [16, 24, (20, 40), None], [0, 4, 9], [1, 4, 16])),
)
def test_plan_covers_padded_frame_once(size, tile, overlap, multiple):
    h, w = size
    plan = plan_tiles(h, w, tile=tile, overlap=overlap, size_multiple=multiple)
    assert plan.padded_height == padded_size(h, multiple) >= h
    assert plan.padded_width == padded_size(w, multiple) >= w
    assert plan.tile_height % multiple == 0 and plan.tile_width % multiple == 0
    for t in plan.tiles:
        assert 0 <= t.y0 < t.y1 <= plan.padded_height
        assert 0 <= t.x0 < t.x1 <= plan.padded_width
        assert t.y0 % multiple == 0 and t.x0 % multiple == 0
        assert (t.y1 - t.y0, t.x1 - t.x0) == (plan.tile_height, plan.tile_width)
    # neighbours overlap by at least the requested amount (when there is more than one tile)
    for starts, size_ in ((plan.row_starts, plan.tile_height), (plan.col_starts, plan.tile_width)):
        for a, b in itertools.pairwise(starts):
            assert a + size_ - b >= min(overlap, size_ - 1)
    for blend in ("cosine", "linear", "none"):
        cov = coverage(plan, 4, blend)
        np.testing.assert_allclose(cov, 1.0, atol=1e-6)


def test_plan_whole_frame_and_errors():
    plan = plan_tiles(37, 45, tile=None, overlap=8, size_multiple=16)
    assert plan.n_tiles == 1 and (plan.tile_height, plan.tile_width) == (48, 48)
    with pytest.raises(ValueError):
        plan_tiles(0, 5, tile=4, overlap=0)
    with pytest.raises(ValueError):
        plan_tiles(5, 5, tile=4, overlap=-1)
    # a tile larger than the frame is capped
    assert plan_tiles(10, 10, tile=512, overlap=8, size_multiple=4).tile_height == 12


@pytest.mark.parametrize(("n", "multiple"), [(37, 16), (5, 16), (45, 4), (1, 4), (16, 16), (3, 4)])
def test_pad_indices_match_the_networks_padding(n, multiple):
    x = torch.arange(n, dtype=torch.float32).reshape(1, 1, 1, n).expand(1, 1, 2, n)
    ref = pad_to_multiple(x, multiple)[0, 0, 0].numpy().astype(int)
    got = pad_indices(n, padded_size(n, multiple))
    np.testing.assert_array_equal(got, ref)


def test_weights_are_zero_near_interior_edges():
    starts = (0, 16, 32)
    tile, s = 24, 4
    w = axis_weights(starts, tile, s, "cosine")
    ov = (tile - 16) * s  # 32 HR px
    trim = ov // 3
    assert np.all(w[0][-trim:] == 0) and np.all(w[1][:trim] == 0)
    assert np.all(w[0][: tile * s - ov] == 1)  # no neighbour: full weight
    none = axis_weights(starts, tile, s, "none")
    assert set(np.unique(none[0])) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        axis_weights(starts, tile, s, "gauss")


def test_strip_stitcher_equals_full_accumulation():
    rng = np.random.default_rng(1)
    plan = plan_tiles(30, 41, tile=12, overlap=5, size_multiple=4)
    s = 4
    weights = blend_weights(plan, s, "cosine")
    full = np.zeros((3, plan.padded_height * s, plan.padded_width * s))
    out = np.full((3, plan.height * s, plan.width * s), np.nan, dtype=np.float32)

    def emit(y0, y1, block):
        assert np.isnan(out[:, y0:y1]).all(), "a row was emitted twice"
        out[:, y0:y1] = block

    st = StripStitcher(plan, weights, s, emit)
    for t in plan.tiles:
        hr = rng.random((3, plan.tile_height * s, plan.tile_width * s)).astype(np.float32)
        full[:, t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s] += hr * weights.tile(t)[None]
        st.add(t, hr)
    st.finish()
    ref = full[:, : plan.height * s, : plan.width * s]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_balanced_tile_uses_as_few_tiles_with_less_waste():
    from satvsr_cli.engine.memory import balanced_tile

    # 640 px, 256-px tiles, overlap 32: 3 tiles either way, 236 px cover it (708 px computed)
    assert balanced_tile(256, (640, 640), 4) == (236, 236)
    p = plan_tiles(640, 640, tile=(236, 236), overlap=32, size_multiple=4)
    assert len(p.row_starts) == 3 and p.row_starts[-1] + 236 == 640
    # a frame within the side runs whole; non-square frames per axis
    assert balanced_tile(256, (160, 640), 4) == (160, 236)
    assert balanced_tile(640, (640, 640), 4) == (640, 640)
    # never above the side, never below one size multiple, an odd frame padded first
    for side in (16, 48, 100, 256):
        for n_px in (17, 100, 333, 1000):
            th, tw = balanced_tile(side, (n_px, n_px), 4)
            assert th == tw and 4 <= th <= max(side, 4) and th % 4 == 0
            plan = plan_tiles(n_px, n_px, tile=(th, tw), overlap=min(32, side // 4),
                              size_multiple=4)
            wide = plan_tiles(n_px, n_px, tile=side, overlap=min(32, side // 4), size_multiple=4)
            assert len(plan.row_starts) <= len(wide.row_starts)


def test_automatic_overlap_follows_the_network():
    from types import SimpleNamespace

    import torch

    from satvsr_cli.engine.config import UpscaleConfig
    from satvsr_cli.engine.memory import choose_resources

    info = SimpleNamespace(height=640, width=640)
    for name, want in (("lgtd_small", 32), ("lgtd_base", 48), (None, 32)):
        res = choose_resources(UpscaleConfig(input="x.mp4"), info, net=object(), name=name, size_multiple=4,
                               device=torch.device("cpu"), precision="fp32")
        assert res.tile is not None and res.overlap == want, name
        # the tiles still cover 640 px in as few tiles as the cap allows, at that overlap
        assert (640 - res.tile[0]) / (res.tile[0] - res.overlap) <= 2
