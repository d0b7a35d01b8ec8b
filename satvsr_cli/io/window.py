"""``--window X,Y,W,H``: upscale part of every frame (LR pixels, like GDAL's ``-srcwin``).

:class:`WindowSource` wraps any source: its frames are cropped as they are read and its
description says the window's size; a GeoTIFF's georeferencing is moved to the window's corner
(:func:`satvsr_cli.io.geotiff.meta.window_meta`), so the x4 output lies where the window lies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from satvsr_cli.errors import InputError
from satvsr_cli.io.base import Frame, FrameSource, SourceInfo

Window = tuple[int, int, int, int]


def check_window(window: Window, info: SourceInfo) -> None:
    """The window must lie inside the frame (InputError with one line otherwise)."""
    x, y, w, h = window
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise InputError(f"--window {x},{y},{w},{h}: X and Y must be >= 0, W and H >= 1")
    if x + w > info.width or y + h > info.height:
        raise InputError(
            f"--window {x},{y},{w},{h} reaches outside the {info.width}x{info.height} frame "
            f"(X+W <= {info.width}, Y+H <= {info.height})"
        )


def windowed_info(info: SourceInfo, window: Window) -> SourceInfo:
    """The description of the window of ``info``'s frames."""
    check_window(window, info)
    x, y, w, h = window
    geo = info.geo
    if geo is not None:
        from satvsr_cli.io.geotiff.meta import window_meta

        geo = window_meta(geo, x, y, w, h)
    return dataclasses.replace(info, width=w, height=h, geo=geo,
                               identity={**info.identity, "window": [x, y, w, h]})


class WindowSource(FrameSource):
    """The frames of ``base`` cropped to ``window`` (X, Y, W, H in LR pixels)."""

    def __init__(self, base: FrameSource, window: Window) -> None:
        """Wrap ``base``; InputError when the window is not inside its frames."""
        self.base = base
        self.window = window
        self.info = windowed_info(base.info, window)

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """The base's frames from ``start`` on, cropped."""
        x, y, w, h = self.window
        for f in self.base.frames(start):
            valid = None if f.valid is None else f.valid[y:y + h, x:x + w]
            if valid is not None and bool(valid.all()):
                valid = None
            yield Frame(f.index, f.data[y:y + h, x:x + w], valid)

    def close(self) -> None:
        """Close the base source."""
        self.base.close()
