"""The choices of every option, defined once: the CLI's Typer options, the library's config
dataclasses and the code that acts on a choice all use these :class:`~enum.StrEnum` types.

A :class:`~enum.StrEnum` member *is* a ``str`` (``Blend.cosine == "cosine"``), so manifests,
tags and JSON output read exactly as before. Library callers may pass plain strings; they are
converted (and checked) once, where a config is built, with :func:`choice`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from satvsr_cli.errors import OptionError, SatvsrError

__all__ = [
    "Backend",
    "Blend",
    "Compression",
    "ExistingOutput",
    "FrameFormat",
    "InputType",
    "OutputKind",
    "Precision",
    "TemporalPadding",
    "choice",
]


class InputType(StrEnum):
    """What the input is (``auto``: detected from the path)."""

    auto = "auto"
    video = "video"
    frames = "frames"
    geotiff = "geotiff"


class OutputKind(StrEnum):
    """What an output path means: a video file, a folder of images, a folder of GeoTIFFs (one per
    frame), or one stacked GeoTIFF."""

    video = "video"
    frames = "frames"
    geotiff_frames = "geotiff-frames"
    geotiff_stack = "geotiff-stack"


class TemporalPadding(StrEnum):
    """How a window is completed at the clip ends (see :func:`satvsr_cli.engine.windows.frame_indices`)."""

    centre = "centre"
    reflect = "reflect"
    replicate = "replicate"


class Blend(StrEnum):
    """Seam blending of overlapping tiles."""

    cosine = "cosine"
    linear = "linear"
    none = "none"


class Precision(StrEnum):
    """Compute precision; ``auto`` is resolved per device by
    :func:`satvsr_cli.device.resolve_precision`."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Backend(StrEnum):
    """Inference backend (:mod:`satvsr_cli.engine.backend`); ``auto``: OpenVINO on CPU when
    installed and the network converts, else torch (``$SATVSR_BACKEND`` replaces what ``auto``
    means)."""

    auto = "auto"
    torch = "torch"
    openvino = "openvino"


class Compression(StrEnum):
    """GeoTIFF compression."""

    deflate = "deflate"
    zstd = "zstd"
    lzw = "lzw"
    none = "none"


class FrameFormat(StrEnum):
    """Image format of a frame-folder output."""

    png = "png"
    tif = "tif"


class ExistingOutput(StrEnum):
    """What to do when the output (or an unfinished run of it) exists: refuse (the default),
    overwrite it, or resume the unfinished run."""

    refuse = "refuse"
    overwrite = "overwrite"
    resume = "resume"


E = TypeVar("E", bound=StrEnum)

_LABELS: dict[type[StrEnum], str] = {
    InputType: "input type",
    OutputKind: "output kind",
    TemporalPadding: "temporal padding",
    Blend: "blend",
    Precision: "precision",
    Backend: "backend",
    Compression: "compression",
    FrameFormat: "frame format",
    ExistingOutput: "existing-output policy",
}


def choice(
    cls: type[E], value: str | E, *, error: type[SatvsrError] = OptionError, label: str = ""
) -> E:
    """``value`` as a member of ``cls``; an unknown value raises ``error`` (default
    :class:`~satvsr_cli.errors.OptionError`, which is both an input error and a ``ValueError``)
    with the one line ``unknown <label> 'x'; use one of a, b, c``."""
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).lower())
    except ValueError:
        what = label or _LABELS.get(cls, cls.__name__)
        raise error(
            f"unknown {what} {value!r}; use one of {', '.join(m.value for m in cls)}"
        ) from None
