"""Device and precision choice: ``auto`` resolves once, with a clear error for unusable requests.

The one resolver of the project: upscale and probe, train and the evaluation all use it.
"""

from __future__ import annotations

import torch

from satvsr_cli.errors import DeviceError
from satvsr_cli.options import Precision, choice

__all__ = ["DeviceError", "Precision", "autocast_dtype", "resolve_device", "resolve_precision"]

_DTYPES = {Precision.fp32: torch.float32, Precision.bf16: torch.bfloat16,
           Precision.fp16: torch.float16}

def resolve_device(name: str, *, mps: bool = True) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``mps``, else ``cpu``; explicit names are checked.

    The one device resolver of the project (upscale, probe, train and benchmark). ``mps=False``
    leaves MPS out of ``auto`` (training and scoring use CUDA or CPU only).
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        backend = getattr(torch.backends, "mps", None)
        if mps and backend is not None and backend.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no visible GPU"
            raise DeviceError(f"--device {name}: CUDA is not available ({build}, torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise DeviceError("--device mps: MPS is not available")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def resolve_precision(precision: str | Precision, device: torch.device) -> Precision:
    """``auto`` → fp32 on CPU/MPS, bf16 on CUDA when supported, else fp16; explicit values checked.

    An unknown value is an :class:`~satvsr_cli.errors.OptionError` (exit code 2), as everywhere.
    """
    p = choice(Precision, precision or Precision.auto)
    if p == Precision.auto:
        if device.type == "cuda":
            return Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp16
        return Precision.fp32
    if p == "fp16" and device.type == "cpu":
        raise DeviceError("--precision fp16 is not supported on CPU; use fp32 or bf16")
    if p == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("--precision bf16: this GPU has no bfloat16 support; use fp16 or fp32")
    return p


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (``None`` for fp32)."""
    p = choice(Precision, precision)
    return None if p == Precision.fp32 else _DTYPES[p]
