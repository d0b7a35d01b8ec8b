"""The benchmark's comparison picture: one frame as LR (nearest ×4) | bicubic | each network | GT,
with each scored panel labelled by the PSNR the benchmark measured for that very frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satvsr_cli.errors import InputError
from satvsr_cli.eval.protocol import (
    SCALE,
    data_range_of,
    load_lr,
    predict_windows,
    read_gt,
    to_numpy_pred,
)
from satvsr_cli.eval.report import MethodResult
from satvsr_cli.eval.runtime import autocast_for
from satvsr_cli.jilin import Clip
from satvsr_cli.panels import Panel, compose, layout_json, nearest_up, save_png, to_display
from satvsr_cli.resize import imresize

if TYPE_CHECKING:
    import torch

LR_LABEL = "LR (nearest x4)"
GT_LABEL = "GT"


@dataclass(frozen=True)
class ComparePicture:
    """What :func:`write_compare_png` wrote: the file, the clip and frame, and the panels."""

    path: Path
    clip: str
    frame: int
    panels: list[Panel]

    def to_json(self) -> dict[str, object]:
        """For the report's settings."""
        return {
            "path": str(self.path),
            "clip": self.clip,
            "frame": self.frame,
            "panels": [p.label for p in self.panels],
        }


def scored_frames(clip: Clip, max_frames: int | None) -> int:
    """How many frames of ``clip`` the benchmark scores."""
    n = len(clip.gt)
    return n if max_frames is None else min(n, max_frames)


def check_compare_frame(clip: Clip, frame: int | None, max_frames: int | None) -> int:
    """The frame to show (default: the middle scored frame of ``clip``).

    Raises:
        InputError: ``frame`` is not a scored frame of the clip.
    """
    n = scored_frames(clip, max_frames)
    if frame is None:
        return n // 2
    if not 0 <= frame < n:
        raise InputError(
            f"--compare-frame {frame}: clip {clip.name} has {n} scored frames (0..{n - 1})"
        )
    return frame


def write_compare_png(
    path: str | Path,
    clip: Clip,
    methods: Sequence[MethodResult],
    nets: Sequence[tuple[torch.nn.Module, str]],
    *,
    frame: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    temporal_padding: str = "centre",
    lr_from_gt: bool = False,
    max_frames: int | None = None,
) -> ComparePicture:
    """Write the comparison PNG of frame ``frame`` of ``clip``.

    ``methods`` are the benchmark's rows (bicubic first, then one per network, in the order of
    ``nets``); the PSNR on each panel is the row's ``frame_psnr`` of that frame on that clip,
    i.e. the score in the report, not a second measurement. Network panels show the float
    prediction clipped to the displayable range.

    Raises:
        InputError: a frame outside the scored frames.
    """
    import torch

    frame = check_compare_frame(clip, frame, max_frames)
    loaded = load_lr(clip, lr_from_gt=lr_from_gt, max_frames=max_frames)
    dr = data_range_of(loaded.dtype)
    lr = loaded.lr[frame]
    scores = {}
    for m in methods:
        row = next((c for c in m.clips if c.clip == clip.name), None)
        scores[m.method] = row.frame_psnr[frame] if row is not None else None
    images = [to_display(nearest_up(lr, SCALE), 0, dr)]
    labels = [LR_LABEL]
    psnrs: list[float | None] = [None]
    bic = methods[0]
    images.append(to_display(imresize(lr, SCALE), 0, dr))
    labels.append(bic.method)
    psnrs.append(scores.get(bic.method))
    dev = torch.device(device)
    lr_np = np.stack(loaded.lr).astype(np.float32) / np.float32(dr)
    frames = torch.from_numpy(lr_np).permute(0, 3, 1, 2).contiguous().to(dev)
    for net, label in nets:
        with torch.inference_mode(), autocast_for(dev, precision, net):
            (_, out), = predict_windows(
                net, frames, [frame], n_total=loaded.n_total, temporal_padding=temporal_padding
            )
        pred = to_numpy_pred(out, dr, False, loaded.dtype)
        images.append(to_display(pred, 0, dr))
        labels.append(label)
        psnrs.append(scores.get(label))
    images.append(to_display(read_gt(loaded, frame), 0, dr))
    labels.append(GT_LABEL)
    psnrs.append(None)
    canvas, panels = compose(images, labels, psnrs)
    layout = layout_json(panels, clip=clip.name, frame=frame, source=str(clip.gt[frame]))
    out_path = save_png(Path(path), canvas, layout)
    return ComparePicture(out_path, clip.name, frame, panels)
