"""Side-by-side comparison pictures: labelled panels in one RGB image (Pillow, default font).

Used by ``satvsr benchmark --compare-png`` (LR | bicubic | networks | GT with PSNR) and
``satvsr upscale --compare`` (bicubic | satvsr on the user's own input). Panels are equally
sized ``(H, W, 3)`` uint8 images; each gets a label bar above it. PNGs carry the panel layout
(labels, PSNR, x offsets) as JSON in a ``satvsr:panels`` text chunk, so that tools and tests can
read what a picture shows without OCR.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: Height of the label bar above each panel, in pixels (two lines: the label, then the PSNR).
LABEL_HEIGHT = 28
#: Gap between panels, in pixels (dark grey).
GAP = 4
#: PNG text chunk that holds the panel layout.
PNG_KEY = "satvsr:panels"


@dataclass(frozen=True)
class Panel:
    """One panel of a picture: its label, its PSNR (``None``: not scored) and where it lies."""

    label: str
    psnr: float | None
    x0: int
    width: int

    @property
    def lines(self) -> list[str]:
        """The lines drawn in the label bar: the label, and the PSNR (``"31.24 dB"``) if any."""
        if self.psnr is None:
            return [self.label]
        value = "inf" if not np.isfinite(self.psnr) else f"{self.psnr:.2f}"
        return [self.label, f"PSNR {value} dB"]

    @property
    def text(self) -> str:
        """The label bar as one line, e.g. ``"bicubic  PSNR 31.24 dB"``."""
        return "  ".join(self.lines)


def to_display(
    img: npt.NDArray[Any], lo: npt.ArrayLike = 0.0, hi: npt.ArrayLike = 255.0
) -> npt.NDArray[np.uint8]:
    """``(H, W, C)`` values → uint8 for display: ``[lo, hi]`` (per channel or scalar) to 0–255,
    clipped and rounded; one channel is repeated to RGB."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    lo_a = np.asarray(lo, dtype=np.float64)
    hi_a = np.asarray(hi, dtype=np.float64)
    span = np.where(hi_a > lo_a, hi_a - lo_a, 1.0)
    out = np.clip(np.rint((a - lo_a) / span * 255.0), 0, 255).astype(np.uint8)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out


def nearest_up(img: npt.NDArray[Any], scale: int) -> npt.NDArray[Any]:
    """Nearest-neighbour ×``scale`` (each pixel a ``scale × scale`` block)."""
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def compose(
    images: Sequence[npt.NDArray[np.uint8]],
    labels: Sequence[str],
    psnrs: Sequence[float | None] | None = None,
    *,
    even: bool = False,
) -> tuple[npt.NDArray[np.uint8], list[Panel]]:
    """Panels side by side, each under a label bar; ``even`` pads to even sizes (for video).

    Raises:
        ValueError: no panels, a label or PSNR count that does not match, panels of
            different sizes or not ``(H, W, 3)`` uint8.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not images:
        raise ValueError("a picture needs at least one panel")
    scores = list(psnrs) if psnrs is not None else [None] * len(images)
    if len(labels) != len(images) or len(scores) != len(images):
        raise ValueError("one label and one PSNR per panel")
    h, w = images[0].shape[:2]
    for im in images:
        if im.shape != (h, w, 3) or im.dtype != np.uint8:
            raise ValueError(f"panels must all be ({h}, {w}, 3) uint8, got {im.shape} {im.dtype}")
    n = len(images)
    width = n * w + (n - 1) * GAP
    height = h + LABEL_HEIGHT
    if even:
        width += width % 2
        height += height % 2
    canvas = np.full((height, width, 3), 32, np.uint8)
    panels = []
    for i, (im, label, psnr) in enumerate(zip(images, labels, scores, strict=True)):
        x0 = i * (w + GAP)
        canvas[LABEL_HEIGHT : LABEL_HEIGHT + h, x0 : x0 + w] = im
        panels.append(Panel(label, None if psnr is None else float(psnr), x0, w))
    font = ImageFont.load_default()
    for p in panels:  # each label drawn in its own bar: a long label is cut at the panel's edge
        bar = Image.fromarray(canvas[:LABEL_HEIGHT, p.x0 : p.x0 + p.width])
        draw = ImageDraw.Draw(bar)
        for k, line in enumerate(p.lines):
            draw.text((3, 2 + 13 * k), line, fill=(255, 255, 255), font=font)
        canvas[:LABEL_HEIGHT, p.x0 : p.x0 + p.width] = np.asarray(bar, dtype=np.uint8)
    return canvas, panels


def layout_json(panels: Sequence[Panel], **extra: Any) -> str:
    """The ``satvsr:panels`` text: the panels (label, psnr, x0, width) and ``extra`` fields."""
    data = {"panels": [asdict(p) | {"text": p.text} for p in panels], **extra}
    return json.dumps(data, allow_nan=True)


def save_png(path: Path, image: npt.NDArray[np.uint8], layout: str) -> Path:
    """Write ``image`` as an optimised PNG with the layout text chunk, atomically."""
    import io

    from PIL import Image, PngImagePlugin

    from satvsr_cli.fsutil import atomic_write_bytes

    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_KEY, layout)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True, pnginfo=info)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_layout(path: Path) -> dict[str, Any]:
    """The ``satvsr:panels`` layout of a PNG written by :func:`save_png`."""
    from PIL import Image

    with Image.open(path) as im:
        text = im.info.get(PNG_KEY)
    if text is None:
        raise ValueError(f"{path}: no {PNG_KEY} text chunk")
    result: dict[str, Any] = json.loads(text)
    return result
