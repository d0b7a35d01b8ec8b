"""Check this CPU's bf16 convolution kernels against fp32 before trusting them.

The ``precision`` block of a manifest records how bf16 changes PSNR on the machine where it was
measured, but the kernels differ between CPUs. On one 2-core Intel Xeon with AMX (torch 2.13.0,
OpenVINO 2026.4) oneDNN's bf16 convolution for 8 input channels with an 8×8 kernel and padding 2
(stride 2 or 4: DBPN's down-projection in ``msdtgp_small``) returns values unrelated to the fp32
result (mean relative error 1.1; 0.003 elsewhere and on the AMD EPYC, and with
``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``). OpenVINO's bf16 inference shares the fault.

:func:`faulty_bf16_convs` runs each distinct convolution configuration of a network once on a
small random input, fp32 against bf16 autocast, with the weights of the first layer of that
configuration (the fault is the kernel's, not the weights'); a layer whose bf16 output is off by
more than :data:`REL_TOL` of the output's mean magnitude is faulty. :func:`guard_bf16` (the torch
runner and the benchmark's autocast) keeps such layers in fp32; the OpenVINO runner, which
cannot, runs fp32. Results are remembered per configuration for the process.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

#: Mean |bf16 − fp32| / mean |fp32| above which a bf16 convolution is faulty (bf16 rounding
#: gives about 0.003).
REL_TOL = 0.05

_verdicts: dict[tuple[Any, ...], bool] = {}


def _signature(m: nn.Module) -> tuple[Any, ...]:
    assert isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    return (type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
            m.dilation, m.groups, getattr(m, "output_padding", None), m.bias is not None)


def _bf16_is_faulty(m: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    if m.weight.dtype != torch.float32:
        return False  # a module already stored in another dtype: not ours to judge
    size = 16 if isinstance(m, nn.ConvTranspose2d) else max(32, 4 * m.kernel_size[0])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, m.in_channels, size, size, generator=g)
    forward: Callable[..., torch.Tensor] = type(m).forward  # the kernel itself, even on a layer keep_fp32 already wrapped
    with torch.inference_mode():
        ref = forward(m, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(m, x).float()
    scale = float(ref.abs().mean())
    return scale > 0 and float((out - ref).abs().mean()) > REL_TOL * scale


def faulty_bf16_convs(model: nn.Module) -> list[str]:
    """Names of ``model``'s convolutions whose bf16 result on this CPU is not close to fp32."""
    bad: list[str] = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        key = _signature(m)
        if key not in _verdicts:
            _verdicts[key] = _bf16_is_faulty(m)
        if _verdicts[key]:
            bad.append(name)
    return bad


def _fp32_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", enabled=False):
        out: torch.Tensor = type(self).forward(self, x.float())
    return out


def keep_fp32(model: nn.Module, names: list[str]) -> list[str]:
    """Make the named layers of ``model`` run in fp32 under autocast (in place); returns them."""
    modules = dict(model.named_modules())
    for name in names:
        m = modules[name]
        m.forward = types.MethodType(_fp32_forward, m)
    return names


def guard_bf16(model: nn.Module) -> list[str]:
    """Before bf16 autocast on this CPU: keep ``model``'s faulty convolutions in fp32 (in place)."""
    return keep_fp32(model, faulty_bf16_convs(model))
