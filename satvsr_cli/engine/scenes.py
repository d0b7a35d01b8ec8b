"""Is a folder of frames one scene? The rule behind the "unrelated images" warning.

Video super-resolution fuses each frame with its neighbours, so a folder of unrelated images
(a photo collection, a classification data set) gives outputs that depend on which images
happen to sit beside each other. :func:`neighbour_similarity` measures how alike neighbouring
frames are: for up to :data:`PAIRS` neighbour pairs spread over the sequence, both frames are
reduced to grey thumbnails (long side :data:`THUMB` px), and the normalised cross-correlation
(NCC) is taken at the best shift of up to :data:`MAX_SHIFT` thumbnail pixels either way (the
scene may drift). The median over the pairs is the similarity: frames of one video are near 1,
unrelated images near 0. Below :data:`THRESHOLD` the job warns and suggests ``--independent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

THUMB = 64
MAX_SHIFT = 3
PAIRS = 6
THRESHOLD = 0.5


def thumbnail(path: Path, size: int = THUMB) -> np.ndarray:
    """A grey float thumbnail (long side ``size``) of an image, read decimated by GDAL."""
    import warnings

    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path) as ds:
            f = min(1.0, size / max(ds.width, ds.height))
            h, w = max(1, round(ds.height * f)), max(1, round(ds.width * f))
            bands = list(range(1, min(ds.count, 3) + 1))
            data = ds.read(bands, out_shape=(len(bands), h, w), resampling=Resampling.average)
    return data.astype(np.float64).mean(axis=0)


def ncc_best_shift(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """The largest normalised cross-correlation of ``a`` and ``b`` over integer shifts of up
    to ``max_shift`` pixels (only the overlapping part is compared); 1 for two flat images
    that are equal, 0 for a flat and a textured one."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w], b[:h, :w]
    best = -1.0
    m = max(0, min(max_shift, h // 4, w // 4))
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            pa = a[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            pb = b[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            da, db = pa - pa.mean(), pb - pb.mean()
            na, nb = float(np.sqrt((da * da).sum())), float(np.sqrt((db * db).sum()))
            if na < 1e-9 or nb < 1e-9:
                value = 1.0 if na < 1e-9 and nb < 1e-9 and abs(pa.mean() - pb.mean()) < 1e-6 \
                    else 0.0
            else:
                value = float((da * db).sum() / (na * nb))
            best = max(best, value)
    return best


def neighbour_similarity(files: Sequence[Path], pairs: int = PAIRS) -> float | None:
    """The median best-shift NCC of up to ``pairs`` neighbouring frames (``None`` for fewer
    than two frames)."""
    n = len(files)
    if n < 2:
        return None
    starts = sorted({round(i * (n - 2) / max(1, pairs - 1)) for i in range(min(pairs, n - 1))})
    values = [ncc_best_shift(thumbnail(files[i]), thumbnail(files[i + 1])) for i in starts]
    return float(np.median(values))


def unrelated_warning(spec: str, files: Sequence[Path]) -> str | None:
    """The warning for a frame folder that does not look like one scene, else ``None``."""
    try:
        sim = neighbour_similarity(files)
    except Exception:  # noqa: BLE001 - a heuristic: never stop a job because of it
        return None
    if sim is None or sim >= THRESHOLD:
        return None
    return (f"the frames of {spec} look like unrelated images (neighbour similarity {sim:.2f} "
            f"< {THRESHOLD}): upscaled as one clip, each output depends on its neighbours; "
            "add --independent to upscale every image alone")
