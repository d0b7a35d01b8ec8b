"""``satvsr upscale --compare``: bicubic | satvsr side by side, on the user's own input.

After a job, the input and the written output are read again: each compared frame becomes
``bicubic ×4 of the input | the satvsr output`` under labels (:mod:`satvsr_cli.panels`). A ``.png``
holds one frame (``frame``, default the middle output frame); a video suffix holds every output
frame (H.264, CRF 18, yuv420p, the source's frame rate).

Display: 8-bit data is shown as it is; other data (16-bit, floats) is stretched per band from the
0.5/99.5 percentiles of the first compared input frame, the same stretch for both panels and
every frame (no flicker). The bands shown are ``--bands`` when given, else the first three (one
band: grey).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from satvsr_cli.errors import InputError, OutputError
from satvsr_cli.panels import Panel, compose, layout_json, save_png, to_display
from satvsr_cli.resize import imresize

if TYPE_CHECKING:
    from satvsr_cli.engine.config import UpscaleConfig, UpscaleSummary
    from satvsr_cli.io.base import FrameSource

BICUBIC_LABEL = "bicubic x4"
#: Percentiles of the first compared input frame that bound the display of non-8-bit data.
STRETCH = (0.5, 99.5)


@dataclass(frozen=True)
class Comparison:
    """What :func:`write_comparison` wrote."""

    path: Path
    kind: str  # "png" or "video"
    frames: int
    first_frame: int
    panels: list[Panel]


def compare_kind(path: Path) -> str:
    """``png`` or ``video`` from the suffix of a ``--compare`` path.

    Raises:
        OutputError: any other suffix.
    """
    from satvsr_cli.io.video import VIDEO_OUTPUT_SUFFIXES

    suffix = path.suffix.lower()
    if suffix == ".png":
        return "png"
    if suffix in VIDEO_OUTPUT_SUFFIXES:
        return "video"
    raise OutputError(
        f"{path}: --compare writes a .png (one frame) or a video "
        f"({', '.join(VIDEO_OUTPUT_SUFFIXES)})"
    )


def check_compare_path(path: Path, output: Path | None, overwrite: bool) -> None:
    """Fail before the job: a bad suffix, the job's own output, a missing folder, or an existing
    file without ``overwrite``."""
    compare_kind(path)
    if output is not None and path.resolve() == Path(output).resolve():
        raise OutputError(f"{path}: --compare must differ from the output")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{parent}: folder for --compare does not exist")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")


def _display_bands(n_bands: int, bands: tuple[int, ...] | None) -> list[int]:
    if bands:
        return [b - 1 for b in bands]
    return [0, 1, 2] if n_bands >= 3 else [0]


def _stretch(
    data: npt.NDArray[np.generic], valid: npt.NDArray[np.bool_] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if data.dtype == np.uint8:
        n = data.shape[2]
        return np.zeros(n), np.full(n, 255.0)
    lo, hi = [], []
    for c in range(data.shape[2]):
        v = data[..., c].astype(np.float64)
        v = v[valid] if valid is not None else v.ravel()
        v = v[np.isfinite(v)]
        a, b = (np.percentile(v, STRETCH) if v.size else (0.0, 1.0))
        lo.append(float(a))
        hi.append(float(b) if b > a else float(a) + 1.0)
    return np.array(lo), np.array(hi)


def _open_output(summary: UpscaleSummary, n_bands: int) -> FrameSource:
    from satvsr_cli.io import open_source

    kind = summary.output_kind
    if kind == "video":
        return open_source(str(summary.output), "video")
    if kind == "geotiff-stack":
        return open_source(str(summary.output), "geotiff", bands_per_frame=n_bands)
    if kind == "geotiff-frames":
        return open_source(str(summary.output), "geotiff")
    return open_source(str(summary.output), "frames")


def write_comparison(
    config: UpscaleConfig,
    summary: UpscaleSummary,
    path: str | Path,
    *,
    frame: int | None = None,
) -> Comparison:
    """Write the bicubic | satvsr comparison of a finished job to ``path`` (.png or a video).

    Raises:
        InputError: ``frame`` is not an output frame. OutputError: a bad suffix.
    """
    from satvsr_cli.io import open_source

    path = Path(path)
    kind = compare_kind(path)
    inp = config.input
    n_out = summary.frames_total
    if frame is not None and not 0 <= frame < n_out:
        raise InputError(f"--compare-frame {frame}: the output has {n_out} frames (0..{n_out - 1})")
    first = (n_out // 2 if frame is None else frame) if kind == "png" else 0
    labels = [BICUBIC_LABEL, f"satvsr {summary.model.split(' (')[0]}"]
    with open_source(inp.path, inp.type, bands_per_frame=inp.bands_per_frame,
                     autorotate=inp.autorotate) as src:
        n_bands = src.info.bands
        sel = _display_bands(n_bands, inp.bands)
        fps = src.info.fps
        with _open_output(summary, n_bands) as out:
            pairs = zip(src.frames(inp.start + first), out.frames(first), strict=False)
            lo = hi = np.zeros(0)
            writer = None
            tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
            count = 0
            panels: list[Panel] = []
            try:
                for a, b in pairs:
                    if count == 0:
                        lo, hi = _stretch(a.data[..., sel], a.valid)
                    lr = a.data[..., sel].astype(np.float64)
                    bic = imresize(lr, 4)
                    sr = b.data[..., sel]
                    canvas, panels = compose(
                        [to_display(bic, lo, hi), to_display(sr, lo, hi)], labels,
                        even=kind == "video",
                    )
                    if kind == "png":
                        layout = layout_json(panels, frame=first, input=inp.path,
                                             output=str(summary.output))
                        save_png(path, canvas, layout)
                        return Comparison(path, kind, 1, first, panels)
                    if writer is None:
                        writer = _video_writer(tmp, canvas.shape[1], canvas.shape[0], fps)
                    writer.send(np.ascontiguousarray(canvas))
                    count += 1
                if writer is None:
                    raise InputError(f"{inp.path}: no frame to compare")
                writer.close()
                writer = None
                os.replace(tmp, path)
            finally:
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    return Comparison(path, kind, count, first, panels)


def _video_writer(path: Path, width: int, height: int, fps: Fraction | None) -> Any:
    import imageio_ffmpeg

    rate = fps if fps is not None and fps > 0 else Fraction(25)
    gen = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=float(rate), codec="libx264", pix_fmt_out="yuv420p",
        quality=None, output_params=["-crf", "18"], macro_block_size=1,
        ffmpeg_log_level="error",
    )
    gen.send(None)
    return gen
