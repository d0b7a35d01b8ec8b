"""Invalid pixels (nodata, masks, NaN): filled for the network on reading, restored on writing."""

from __future__ import annotations

import math

import numpy as np

from satvsr_cli.io.geotiff.meta import GeoMeta

_BIG = np.int32(2**30)


def _nearest_along_rows(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the column of the nearest True in its row and the distance to it
    (``_BIG`` where the row has no True); int32 arrays."""
    w = valid.shape[1]
    ar = np.arange(w, dtype=np.int32)
    left = np.where(valid, ar, np.int32(-1))
    np.maximum.accumulate(left, axis=1, out=left)
    right = np.where(valid, ar, _BIG)
    right = np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1]
    dl = np.where(left >= 0, ar - left, _BIG)
    dr = np.where(right < _BIG, right - ar, _BIG)
    use_left = dl <= dr
    return np.where(use_left, left, right), np.where(use_left, dl, dr)


def _nearest_in_rows_chunked(valid: np.ndarray, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nearest_along_rows` computed ``rows`` rows at a time (bounded temporaries)."""
    idx = np.empty(valid.shape, dtype=np.int32)
    dist = np.empty(valid.shape, dtype=np.int32)
    for r0 in range(0, valid.shape[0], rows):
        idx[r0 : r0 + rows], dist[r0 : r0 + rows] = _nearest_along_rows(valid[r0 : r0 + rows])
    return idx, dist


def _nearest_source(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inv_rows, inv_cols, src_rows, src_cols): for every invalid pixel, a nearby valid one.

    The source is the nearest valid pixel along the pixel's row or column, whichever is closer.
    A pixel whose row and column hold no valid pixel takes, along its row, the nearest column
    that holds valid pixels, and in that column the valid pixel nearest to its row. ``valid``
    must hold at least one True. Memory: a few int32 arrays of the frame size.
    """
    inv_r, inv_c = np.nonzero(~valid)
    col_r, dist_r = _nearest_in_rows_chunked(valid)
    cand_c, d_row = col_r[inv_r, inv_c], dist_r[inv_r, inv_c]
    del col_r, dist_r
    row_ct, dist_ct = _nearest_in_rows_chunked(np.ascontiguousarray(valid.T))
    cand_r, d_col = row_ct[inv_c, inv_r], dist_ct[inv_c, inv_r]
    del dist_ct
    use_row = d_row <= d_col
    src_r = np.where(use_row, inv_r, cand_r)
    src_c = np.where(use_row, cand_c, inv_c)
    unresolved = np.minimum(d_row, d_col) >= _BIG
    if unresolved.any():
        near_col, _ = _nearest_along_rows(np.asarray(valid.any(axis=0))[None, :])
        c2 = near_col[0, inv_c[unresolved]]
        src_c[unresolved] = c2
        src_r[unresolved] = row_ct[c2, inv_r[unresolved]]
    return inv_r, inv_c, src_r, src_c


def fill_invalid(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace the pixels of ``data`` (H, W, C) where ``~valid`` (H, W) by a nearby valid pixel.

    The fill copies, for each invalid pixel, the nearest valid pixel along its row or column
    (whichever is closer; all bands from the same pixel), in O(H*W) numpy without scipy. It is
    meant to keep NaN and nodata out of the network's receptive field, not to be a good
    interpolation: the writers put nodata back on those pixels. When no pixel is valid, the
    frame is returned as zeros. Returns a new array unless every pixel is valid (then ``data``
    itself); ``data`` is never modified.
    """
    if valid.all():
        return data
    if not valid.any():
        return np.zeros_like(data)
    inv_r, inv_c, src_r, src_c = _nearest_source(valid)
    out = data.copy()
    out[inv_r, inv_c] = data[src_r, src_c]
    return out


def restore_nodata(meta: GeoMeta, data: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``data`` (h, w, C) as (C, h, w) with nodata where ``~valid``.

    A valid pixel whose value happens to equal the nodata value is moved one step away from it
    (integers: +-1; floats: the next representable value), because it would otherwise read
    back as nodata. Without a nodata value, floats get NaN and integers are left as they are
    (the mask is then written as an internal mask band).
    """
    arr = np.moveaxis(np.asarray(data), -1, 0)
    fill: float | None = meta.nodata
    if fill is None and arr.dtype.kind == "f":
        fill = float("nan")
    if fill is None:
        return arr
    nod = np.asarray(fill, dtype=arr.dtype)
    if not math.isnan(fill):
        clash = arr == nod
        if valid is not None:
            clash &= valid[None]
        if clash.any():
            if arr.dtype.kind == "f":
                away = np.nextafter(nod, np.asarray(np.inf, dtype=arr.dtype))
            else:
                away = nod + 1 if nod < np.iinfo(arr.dtype).max else nod - 1
            arr = np.where(clash, np.asarray(away, dtype=arr.dtype), arr)
    if valid is None or valid.all():
        return arr
    return np.where(valid[None], arr, nod)


def needs_mask(meta: GeoMeta, valid: np.ndarray | None) -> bool:
    return (
        valid is not None
        and meta.nodata is None
        and np.dtype(meta.dtype).kind != "f"
        and not bool(valid.all())
    )
