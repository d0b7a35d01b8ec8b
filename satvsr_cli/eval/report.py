"""The results of an evaluation: per clip, per method, and the report written as JSON."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from satvsr_cli import __version__

FORMAT = "satvsr-benchmark/1"


@dataclass(frozen=True)
class ClipResult:
    """Scores of one method on one clip."""

    clip: str
    frames: int
    psnr: float
    ssim: float
    frame_psnr: tuple[float, ...]
    frame_ssim: tuple[float, ...]
    lr_size: tuple[int, int]
    lr_source: str
    gmac_per_frame: float | None = None


@dataclass
class MethodResult:
    """Scores and costs of one method (bicubic or a network) over every clip."""

    method: str
    clips: list[ClipResult] = field(default_factory=list)
    kind: str = "network"
    params: int | None = None
    ms_per_frame: float | None = None
    fps_end_to_end: float | None = None
    peak_mem_mb: float | None = None
    device: str = "cpu"
    precision: str = "fp32"
    weights_sha256: str | None = None
    #: per clip, the mean PSNR with five copies of the centre frame (``--ablate-window``)
    static_psnr: dict[str, float] = field(default_factory=dict)

    @property
    def window_gain_db(self) -> float | None:
        """PSNR with the real 5-frame window minus PSNR with five copies of the centre frame,
        mean over clips: the network's temporal contribution (``None`` unless ablated)."""
        if not self.static_psnr:
            return None
        return float(np.mean([c.psnr - self.static_psnr[c.clip] for c in self.clips
                              if c.clip in self.static_psnr]))

    @property
    def frames(self) -> int:
        """Frames scored over every clip."""
        return sum(c.frames for c in self.clips)

    @property
    def psnr(self) -> float:
        """Mean over clips of the per-clip mean PSNR (the papers' aggregation)."""
        return float(np.mean([c.psnr for c in self.clips])) if self.clips else math.nan

    @property
    def ssim(self) -> float:
        """Mean over clips of the per-clip mean SSIM."""
        return float(np.mean([c.ssim for c in self.clips])) if self.clips else math.nan

    @property
    def psnr_all_frames(self) -> float:
        """Mean PSNR over every frame of every clip (equal to :attr:`psnr` for equal clips)."""
        vals = [v for c in self.clips for v in c.frame_psnr]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def ssim_all_frames(self) -> float:
        """Mean SSIM over every frame of every clip."""
        vals = [v for c in self.clips for v in c.frame_ssim]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def gmac_per_frame(self) -> float | None:
        """Frame-weighted mean of the per-clip GMAC per output frame (one full 5-frame forward)."""
        known = [(c.gmac_per_frame, c.frames) for c in self.clips if c.gmac_per_frame is not None]
        if not known:
            return None
        return sum(g * n for g, n in known) / sum(n for _, n in known)


@dataclass
class BenchmarkReport:
    """Everything :func:`evaluate` measured, with the settings needed to reproduce it."""

    settings: dict[str, Any]
    methods: list[MethodResult]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (non-finite floats become the strings "inf"/"nan")."""
        results = [
            {
                "method": m.method,
                "clip": c.clip,
                "frames": c.frames,
                "psnr": num(c.psnr),
                "ssim": num(c.ssim),
                "lr_size": list(c.lr_size),
                "lr_source": c.lr_source,
                "gmac_per_frame": num(c.gmac_per_frame),
                "psnr_static_window": num(m.static_psnr.get(c.clip)),
                "frame_psnr": [num(v) for v in c.frame_psnr],
                "frame_ssim": [num(v) for v in c.frame_ssim],
            }
            for m in self.methods
            for c in m.clips
        ]
        summary = [
            {
                "method": m.method,
                "kind": m.kind,
                "psnr": num(m.psnr),
                "ssim": num(m.ssim),
                "psnr_all_frames": num(m.psnr_all_frames),
                "ssim_all_frames": num(m.ssim_all_frames),
                "clips": len(m.clips),
                "frames": m.frames,
                "params": m.params,
                "gmac_per_frame": num(m.gmac_per_frame),
                "ms_per_frame": num(m.ms_per_frame),
                "fps_end_to_end": num(m.fps_end_to_end),
                "peak_mem_mb": num(m.peak_mem_mb),
                "device": m.device,
                "precision": m.precision,
                "weights_sha256": m.weights_sha256,
                "window_gain_db": num(m.window_gain_db),
            }
            for m in self.methods
        ]
        return {"format": FORMAT, "settings": self.settings, "results": results, "summary": summary}


def num(v: float | None) -> float | str | None:
    """A JSON-safe number: ``None`` stays, ``inf``/``nan`` become strings."""
    if v is None:
        return None
    f = float(v)
    if math.isfinite(f):
        return f
    return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")


def versions() -> dict[str, str]:
    import torch

    return {
        "satvsr": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": str(torch.version.cuda) if torch.cuda.is_available() else "",
        "platform": platform.platform(),
    }
