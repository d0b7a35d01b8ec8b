"""Spatial tiling: a pure tile plan over the padded LR frame and sum/weight blending of the x4 tiles.

The frame of ``H × W`` LR pixels is first padded at the bottom/right to multiples of the network's
``size_multiple`` (reflect, or replicate when the pad is not smaller than the size — exactly what
the networks' own ``forward`` does), and the tile grid is laid over that padded frame. Every tile
has the same size and starts at a multiple of ``size_multiple``; the last tile of a row/column is shifted back
to end at the frame edge, so neighbouring tiles overlap by *at least* ``overlap`` LR pixels.

Blending is separable. Along one axis, in the overlap of two neighbours (length ``o`` HR pixels),
each tile's weight is exactly 0 in the outer ``trim = o // 3`` pixels next to its own edge and
ramps (cosine or linear) over the middle third; the two weights are complementary, so they sum
to one everywhere. A pixel therefore only takes values from tiles in which it lies at least
``trim`` HR pixels (``overlap / 3`` LR pixels) inside: when the network's receptive field (radius)
is no larger than that, the tiled output equals the untiled one up to float rounding. ``blend="none"`` cuts hard in
the middle of each overlap. Image borders always have weight 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from satvsr_cli.options import Blend, choice


def padded_size(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def pad_indices(n: int, n_padded: int) -> npt.NDArray[np.intp]:
    """Source index of each position of an axis of length ``n`` padded at the end to ``n_padded``.

    Reflect (``n, n+1, … → n-2, n-3, …``) when the pad is smaller than ``n``, replicate otherwise:
    the rule of :func:`satvsr_cli.models.blocks.pad_to_multiple`.
    """
    pad = n_padded - n
    idx = np.arange(n_padded, dtype=np.intp)
    if pad <= 0:
        return idx[:n]
    if pad < n:
        idx[n:] = 2 * (n - 1) - idx[n:]
    else:
        idx[n:] = n - 1
    return idx


def _axis_starts(n: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile starts along one padded axis of length ``n``: multiples of ``multiple`` (so that the
    networks' pooling grids and attention windows stay aligned with the untiled frame)."""
    if tile >= n:
        return [0]
    if overlap >= tile:
        raise ValueError(f"tile {tile} must be larger than the overlap {overlap}")
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    count = 1 + math.ceil((n - tile) / stride)
    starts = [min(i * stride, n - tile) for i in range(count)]
    return sorted(set(starts))


@dataclass(frozen=True)
class Tile:
    """One tile in padded LR coordinates: rows ``y0:y1``, columns ``x0:x1``; ``row``/``col`` in the grid."""

    y0: int
    y1: int
    x0: int
    x1: int
    row: int
    col: int


@dataclass(frozen=True)
class TilePlan:
    """The tile grid of one frame size (LR pixels); pure data, see :func:`plan_tiles`."""

    height: int
    width: int
    padded_height: int
    padded_width: int
    tile_height: int
    tile_width: int
    overlap: int
    size_multiple: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def tiles(self) -> list[Tile]:
        """All tiles in raster order (row by row)."""
        return [
            Tile(y, y + self.tile_height, x, x + self.tile_width, r, c)
            for r, y in enumerate(self.row_starts)
            for c, x in enumerate(self.col_starts)
        ]

    @property
    def n_tiles(self) -> int:
        """Number of tiles per frame."""
        return len(self.row_starts) * len(self.col_starts)

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the grid."""
        return len(self.row_starts), len(self.col_starts)


def plan_tiles(
    height: int,
    width: int,
    *,
    tile: int | tuple[int, int] | None,
    overlap: int,
    size_multiple: int = 1,
) -> TilePlan:
    """Plan the tiles of an ``height × width`` LR frame.

    Args:
        height, width: the LR frame size (before padding).
        tile: tile size in LR pixels (square int or ``(h, w)``), rounded down to a multiple of
            ``size_multiple``, raised to at least ``overlap + size_multiple`` (tiles start at
            multiples of ``size_multiple``) and capped at the padded frame;
            ``None`` means one tile for the whole frame.
        overlap: minimum overlap of neighbouring tiles in LR pixels (capped below the tile size).
        size_multiple: the network's size multiple.

    Returns:
        The :class:`TilePlan`. Its tiles lie inside the padded frame, all have the same size, and
        together cover it; after blending every padded pixel is covered with total weight 1.
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if size_multiple < 1:
        raise ValueError(f"size_multiple must be positive, got {size_multiple}")
    if overlap < 0:
        raise ValueError(f"overlap must be non-negative, got {overlap}")
    ph, pw = padded_size(height, size_multiple), padded_size(width, size_multiple)
    if tile is None:
        th, tw = ph, pw
    else:
        th, tw = (tile, tile) if isinstance(tile, int) else tile
        if th < 1 or tw < 1:
            raise ValueError(f"tile size must be positive, got {th}x{tw}")
        th = max(size_multiple, th // size_multiple * size_multiple)
        tw = max(size_multiple, tw // size_multiple * size_multiple)
        # tile starts are multiples of size_multiple: a tile must exceed the overlap by one
        th = max(th, padded_size(overlap + size_multiple, size_multiple))
        tw = max(tw, padded_size(overlap + size_multiple, size_multiple))
        th, tw = min(th, ph), min(tw, pw)
    ov_h = min(overlap, th - 1) if th < ph else 0
    ov_w = min(overlap, tw - 1) if tw < pw else 0
    rows = _axis_starts(ph, th, ov_h, size_multiple)
    cols = _axis_starts(pw, tw, ov_w, size_multiple)
    return TilePlan(
        height=height,
        width=width,
        padded_height=ph,
        padded_width=pw,
        tile_height=th,
        tile_width=tw,
        overlap=max(ov_h, ov_w),
        size_multiple=size_multiple,
        row_starts=tuple(rows),
        col_starts=tuple(cols),
    )


def _ramp(n: int, blend: str) -> npt.NDArray[np.float64]:
    """Rising weights over ``n`` samples, strictly inside (0, 1), complementary to their mirror."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    if blend == "cosine":
        return 0.5 - 0.5 * np.cos(np.pi * t)
    return t


def axis_weights(
    starts: tuple[int, ...], tile: int, scale: int, blend: str
) -> list[npt.NDArray[np.float32]]:
    """HR weights ``(tile·scale,)`` of each tile along one axis; they sum to 1 at every position."""
    blend = choice(Blend, blend)  # an OptionError is a ValueError
    n = tile * scale
    weights = [np.ones(n, dtype=np.float64) for _ in starts]
    for i in range(len(starts) - 1):
        ov = (starts[i] + tile - starts[i + 1]) * scale  # overlap in HR pixels
        if ov <= 0:
            continue
        left, right = weights[i], weights[i + 1]
        if blend == "none":
            half = ov // 2
            fall = np.concatenate([np.ones(half), np.zeros(ov - half)])
        else:
            trim = ov // 3
            mid = ov - 2 * trim
            fall = np.concatenate([np.ones(trim), _ramp(mid, blend)[::-1], np.zeros(trim)])
        left[n - ov :] *= fall
        right[:ov] *= 1.0 - fall
    return [w.astype(np.float32) for w in weights]


@dataclass(frozen=True)
class BlendWeights:
    """Separable HR blend weights of a plan: ``rows[r]`` (tile_h·s,) and ``cols[c]`` (tile_w·s,)."""

    rows: tuple[npt.NDArray[np.float32], ...]
    cols: tuple[npt.NDArray[np.float32], ...]

    def tile(self, t: Tile) -> npt.NDArray[np.float32]:
        """The 2-D weight ``(tile_h·s, tile_w·s)`` of tile ``t``."""
        return np.outer(self.rows[t.row], self.cols[t.col])


def blend_weights(plan: TilePlan, scale: int, blend: str) -> BlendWeights:
    """The separable blend weights of ``plan`` at ``scale``."""
    return BlendWeights(
        rows=tuple(axis_weights(plan.row_starts, plan.tile_height, scale, blend)),
        cols=tuple(axis_weights(plan.col_starts, plan.tile_width, scale, blend)),
    )


def coverage(plan: TilePlan, scale: int, blend: str) -> npt.NDArray[np.float64]:
    """Total blend weight of every padded HR pixel (for tests: should be all ones)."""
    w = blend_weights(plan, scale, blend)
    acc = np.zeros((plan.padded_height * scale, plan.padded_width * scale), dtype=np.float64)
    for t in plan.tiles:
        acc[t.y0 * scale : t.y1 * scale, t.x0 * scale : t.x1 * scale] += w.tile(t)
    return acc
