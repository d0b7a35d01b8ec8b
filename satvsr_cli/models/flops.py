"""MAC counting with ``torch.utils.flop_counter.FlopCounterMode``: GMAC per output frame (FLOPs / 2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_gmac", "count_gmac_by_name", "time_forward"]


def count_gmac(
    model: nn.Module, height: int, width: int, *, batch: int = 1, clip: torch.Tensor | None = None
) -> float:
    """GMAC per output frame of ``model`` on a random ``(batch, 5, 3, height, width)`` clip
    (or on ``clip`` when given: its batch counts, ``height``/``width`` are then informative).

    Counted: convolutions, transposed convolutions, linear layers and matmuls (as PyTorch's flop
    counter does). Not counted: the bilinear sampling inside the deformable conv, element-wise
    ops, pooling. The model runs once in ``no_grad`` on its own device and dtype; a model on the
    ``meta`` device is counted without any computation.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    if clip is None:
        clip = torch.rand(batch, 5, 3, height, width, device=device, dtype=dtype)
    else:
        batch = int(clip.shape[0])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(clip)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops()) / 2.0 / 1e9 / batch


def count_gmac_by_name(name: str, height: int, width: int, **overrides: Any) -> float:
    """GMAC per output frame of the registered network ``name``, counted on the meta device (fast)."""
    from satvsr_cli.models.registry import build_model

    with torch.device("meta"):
        model = build_model(name, **overrides)
    return count_gmac(model, height, width)


def time_forward(
    model: nn.Module, height: int, width: int, *, repeats: int = 3, warmup: int = 1
) -> list[float]:
    """Wall-clock seconds of ``repeats`` full forwards (batch 1, ``no_grad``) after ``warmup`` runs.

    Uses the model's device and dtype and the current ``torch.get_num_threads()``; synchronises
    CUDA around each run. Report the minimum and the median: shared machines are noisy.
    """
    import time

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    clip = torch.rand(1, 5, 3, height, width, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    times: list[float] = []
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model(clip)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return times
