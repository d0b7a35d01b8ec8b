"""Helpers shared by several test files (imported as ``helpers``: pytest puts ``tests/`` on
``sys.path`` for its rootless test modules)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

from satvsr_cli.models import build_model, tiny_overrides
from satvsr_cli.weights import save_weights


def tiny_weights(path: Path, seed: int = 0, network: str = "lgtd_small") -> Path:
    """A weights entry (``.safetensors`` + manifest) of the tiny configuration of ``network``,
    initialised from ``seed`` (different seeds give different sha256s)."""
    torch.manual_seed(seed)
    cfg = tiny_overrides(network)
    net = build_model(network, **cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_weights(net, path, network=network, config=cfg, data={}, recipe={}, metrics={})


def random_video(path: Path, n: int, h: int, w: int, *, fps: Fraction = Fraction(25),
                 seed: int = 0, codec: str | None = None, quality: float | None = 5,
                 output_params: list[str] | None = None) -> Path:
    """A video of ``n`` random RGB frames (``h`` x ``w``) through the bundled ffmpeg
    (``codec`` default: imageio-ffmpeg's libx264, yuv420p; ``quality`` as imageio-ffmpeg's)."""
    rng = np.random.default_rng(seed)
    kw = {"codec": codec} if codec else {}
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1,
                                      quality=quality, output_params=output_params or [],
                                      ffmpeg_log_level="error", **kw)
    gen.send(None)
    for _ in range(n):
        gen.send(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    gen.close()
    return path
