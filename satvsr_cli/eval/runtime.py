"""Devices, precision and peak memory of an evaluation row (the project's device resolver, the
engine's RSS readers)."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from satvsr_cli.options import Precision, choice

if TYPE_CHECKING:
    import torch


DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision if p != Precision.auto)


class PeakMemory:
    """Peak memory of one row: CUDA allocator peak, or the CPU peak-RSS growth (see module doc)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start_rss_kb = 0

    def __enter__(self) -> Self:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with contextlib.suppress(OSError):  # not Linux, or not allowed: ru_maxrss growth
                Path("/proc/self/clear_refs").write_text("5")
            self.start_rss_kb = _current_rss_kb() or _maxrss_kb()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peak_mb(self) -> float:
        """The peak so far, in MiB."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return float(torch.cuda.max_memory_allocated(self.device)) / 2**20
        return max(0.0, (_maxrss_kb() - self.start_rss_kb) / 1024.0)


def _maxrss_kb() -> int:
    """Peak resident set size of this process in KiB (:func:`satvsr_cli.engine.memory.peak_rss`)."""
    from satvsr_cli.engine.memory import peak_rss

    return peak_rss() // 1024


def _current_rss_kb() -> int:
    """Current resident set size in KiB (:func:`satvsr_cli.engine.memory.current_rss`; 0 where
    unavailable)."""
    from satvsr_cli.engine.memory import current_rss

    return (current_rss() or 0) // 1024


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA is an error.

    The project's resolver (:func:`satvsr_cli.device.resolve_device`, MPS left out of
    ``auto``); a device asked as ``auto`` or ``cuda`` keeps the plain name ``cuda`` in reports.
    """
    import torch

    from satvsr_cli.device import resolve_device as engine_resolve

    dev = engine_resolve(device, mps=False)
    if dev.type == "cuda" and device.strip().lower() in ("auto", "cuda"):
        return torch.device("cuda")
    return dev


def autocast_for(
    device: torch.device, precision: str, model: torch.nn.Module | None = None
) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for bf16/fp16, nothing for fp32.

    With ``model`` and bf16 on the CPU, the convolutions whose bf16 kernel fails this CPU's check
    are set to run in fp32 first (:mod:`satvsr_cli.engine.kernelcheck`), as the engine does.
    """
    import torch

    precision = choice(Precision, precision)
    if precision in (Precision.fp32, Precision.auto):
        return contextlib.nullcontext()
    if model is not None and device.type == "cpu" and precision == Precision.bf16:
        from satvsr_cli.engine.kernelcheck import guard_bf16

        guard_bf16(model)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """A readable device name (GPU model, or the CPU's)."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.get_num_threads()} threads)"
