"""Modulated deformable convolution (DCNv2, "separate guide" flavour) in pure PyTorch (networks.md §4).

The default backend is ``"auto"``: ``torchvision.ops.deform_conv2d`` when torchvision imports
cleanly, else the pure ``grid_sample`` formulation of §4.3. ``set_backend("pure")`` forces the
pure path (tests use it); ``set_backend("torchvision")`` requires torchvision.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OFFSET_WARN_THRESHOLD",
    "DCNSep",
    "deform_conv2d_pure",
    "get_backend",
    "modulated_deform_conv2d",
    "set_backend",
    "torchvision_available",
]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "pure", "torchvision"]

#: ``mean(|offset|)`` above which a warning is logged (upstream uses 100, BasicSR 50).
OFFSET_WARN_THRESHOLD = 100.0


def _import_torchvision_deform() -> Callable[..., Tensor] | None:
    """``torchvision.ops.deform_conv2d``, or None when torchvision is missing or broken."""
    try:  # torchvision is optional; a mismatched build fails at import with odd errors
        from torchvision.ops import deform_conv2d
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return None
    fn: Callable[..., Tensor] = deform_conv2d
    return fn


_tv_deform_conv2d = _import_torchvision_deform()

_backend: Backend = "auto"


def torchvision_available() -> bool:
    """True when ``torchvision.ops.deform_conv2d`` imported cleanly."""
    return _tv_deform_conv2d is not None


def set_backend(name: Backend) -> None:
    """Select the deformable-conv backend: ``"auto"``, ``"pure"`` or ``"torchvision"``."""
    global _backend
    if name not in ("auto", "pure", "torchvision"):
        raise ValueError(f"unknown deform backend {name!r}; valid: auto, pure, torchvision")
    if name == "torchvision" and _tv_deform_conv2d is None:
        raise ValueError("the torchvision deform backend was requested but torchvision is unusable")
    _backend = name


def get_backend() -> str:
    """The backend actually in use: ``"pure"`` or ``"torchvision"``."""
    if _backend == "pure" or _tv_deform_conv2d is None:
        return "pure"
    return "torchvision"


def deform_conv2d_pure(
    input: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    padding: int = 1,
) -> Tensor:
    """Modulated deformable conv (stride 1, dilation 1) with ``F.grid_sample`` (networks.md §4.3).

    Args:
        input: ``(B, C, H, W)``.
        offset: ``(B, 2·G·K, Ho, Wo)``; channel ``g·2K + 2k`` is Δy and ``g·2K + 2k + 1`` is Δx
            for deformable group ``g`` and kernel tap ``k = i·kw + j``.
        mask: ``(B, G·K, Ho, Wo)``, channel ``g·K + k``.
        weight: ``(C_out, C, kh, kw)``.
        bias: ``(C_out,)`` or None.
        padding: zero padding of the (virtual) regular grid; ``Ho = H + 2p − kh + 1``.

    Returns:
        ``(B, C_out, Ho, Wo)``. Samples outside the image read zeros (bilinear with zero corners).
    """
    b, c, h, w = input.shape
    c_out, c_in, kh, kw = weight.shape
    k = kh * kw
    if c_in != c:
        raise ValueError(f"weight expects {c_in} input channels, input has {c}")
    if offset.shape[1] % (2 * k) != 0:
        raise ValueError(f"offset channels {offset.shape[1]} are not a multiple of 2·{k}")
    g = offset.shape[1] // (2 * k)
    if g < 1 or c % g != 0:
        raise ValueError(f"input channels {c} are not divisible by {g} offset groups")
    ho, wo = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    if tuple(offset.shape) != (b, 2 * g * k, ho, wo):
        raise ValueError(f"offset shape {tuple(offset.shape)} != {(b, 2 * g * k, ho, wo)}")
    if tuple(mask.shape) != (b, g * k, ho, wo):
        raise ValueError(f"mask shape {tuple(mask.shape)} != {(b, g * k, ho, wo)}")
    cg = c // g
    if b == 0:
        out = input.new_zeros((0, c_out, ho, wo))
        return out + (0 if bias is None else bias.view(1, -1, 1, 1))

    # Sampling positions need more than half precision (W = 640 leaves fp16 ~0.5 px steps).
    work = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    off = offset.reshape(b, g, k, 2, ho, wo).to(work)
    taps = torch.arange(k, device=input.device)
    ky = (taps // kw).to(work)
    kx = (taps % kw).to(work)
    ys = torch.arange(ho, device=input.device, dtype=work) - padding
    xs = torch.arange(wo, device=input.device, dtype=work) - padding
    base_y = (ky[:, None] + ys[None, :])[:, :, None]  # (K, Ho, 1): y − pad + i
    base_x = (kx[:, None] + xs[None, :])[:, None, :]  # (K, 1, Wo): x − pad + j
    # align_corners=False with (2p + 1)/size − 1 addresses pixel p exactly, also for size 1:
    # g = (2·(base + Δ) + 1)/size − 1 = [(2·base + 1)/size − 1] + (2/size)·Δ, one fused pass.
    gx = torch.add((2.0 * base_x + 1.0) / w - 1.0, off[:, :, :, 1], alpha=2.0 / w)
    gy = torch.add((2.0 * base_y + 1.0) / h - 1.0, off[:, :, :, 0], alpha=2.0 / h)
    grid = torch.stack((gx, gy), dim=-1).view(b * g, k * ho, wo, 2)  # x first, as grid_sample wants
    samples = F.grid_sample(
        input.reshape(b * g, cg, h, w).to(work),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (B·G, Cg, K·Ho, Wo)
    cols = samples.view(b, g, cg, k, ho * wo) * mask.reshape(b, g, 1, k, ho * wo).to(work)
    # (c_in, k) order, as in weight.view(C_out, C·K)
    cols = cols.view(b, c * k, ho * wo).to(input.dtype)
    out = torch.bmm(weight.reshape(1, c_out, c * k).expand(b, c_out, c * k).to(cols.dtype), cols)
    if bias is not None:
        out = out + bias.view(1, -1, 1).to(out.dtype)
    return out.view(b, c_out, ho, wo)


def modulated_deform_conv2d(
    input: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    padding: int = 1,
) -> Tensor:
    """Dispatch to torchvision (when usable and not disabled) or :func:`deform_conv2d_pure`."""
    if get_backend() == "torchvision" and _tv_deform_conv2d is not None:
        return _tv_deform_conv2d(
            input, offset, weight, bias, stride=1, padding=padding, dilation=1, mask=mask
        )
    return deform_conv2d_pure(input, offset, mask, weight, bias, padding)


class DCNSep(nn.Module):
    """Modulated deformable conv whose offsets and mask come from a separate guide feature.

    Parameters (upstream names): ``weight`` (C_out, C_in, k, k), ``bias`` (C_out),
    ``conv_offset_mask`` = Conv2d(C_in → 3·G·k², k, pad k//2). 64→64, k3, G8: 161,560 params.
    """

    def __init__(
        self,
        in_channels: int = 64,
        out_channels: int = 64,
        kernel_size: int = 3,
        deformable_groups: int = 8,
        *,
        guide_channels: int | None = None,
        max_offset: float | None = None,
    ) -> None:
        """Build the parameters; see the class docstring.

        ``max_offset`` (LR px) bounds every offset smoothly, ``m·tanh(o/m)``; ``None`` (upstream)
        leaves them unbounded. Satellite platforms drift 1–2 px per frame, so a bound of a few
        pixels loses nothing and stops a fast-learning alignment from drifting out of the image.
        """
        super().__init__()
        if max_offset is not None and max_offset <= 0:
            raise ValueError(f"max_offset must be positive, got {max_offset}")
        self.max_offset = max_offset
        self._warned = False
        #: when True (training with an alignment loss), ``forward`` keeps its offsets here
        self.keep_offset = False
        self.last_offset: Tensor | None = None
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if deformable_groups < 1 or in_channels % deformable_groups != 0:
            raise ValueError(
                f"in_channels ({in_channels}) must be divisible by deformable_groups "
                f"({deformable_groups})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.deformable_groups = deformable_groups
        self.padding = kernel_size // 2
        k2 = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        guide = in_channels if guide_channels is None else guide_channels
        self.conv_offset_mask = nn.Conv2d(
            guide, 3 * deformable_groups * k2, kernel_size, 1, self.padding, bias=True
        )
        bound = 1.0 / math.sqrt(in_channels * k2)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.conv_offset_mask.weight)
        assert self.conv_offset_mask.bias is not None
        nn.init.zeros_(self.conv_offset_mask.bias)

    def offsets_and_mask(self, fea: Tensor) -> tuple[Tensor, Tensor]:
        """Predict ``offset`` (B, 2·G·k², H, W) and ``mask`` (B, G·k², H, W) from the guide."""
        om = self.conv_offset_mask(fea)
        n_off = 2 * self.deformable_groups * self.kernel_size * self.kernel_size
        offset = om[:, :n_off]
        if self.max_offset is not None:
            offset = self.max_offset * torch.tanh(offset / self.max_offset)
        return offset, torch.sigmoid(om[:, n_off:])

    def forward(self, input: Tensor, fea: Tensor) -> Tensor:
        """Sample ``input`` at offsets predicted from ``fea``."""
        offset, mask = self.offsets_and_mask(fea)
        if self.keep_offset:
            self.last_offset = offset
        if (not self._warned and offset.numel() and offset.device.type != "meta"
                and not torch.compiler.is_compiling()):  # a .item() would break the graph
            mean_abs = float(torch.linalg.vector_norm(offset.detach(), ord=1)) / offset.numel()
            if mean_abs > OFFSET_WARN_THRESHOLD:
                self._warned = True  # once per module: a diverging run would flood the log
                logger.warning(
                    "deformable alignment offsets are large (mean |offset| = %.1f > %.0f): "
                    "the alignment may be diverging",
                    mean_abs,
                    OFFSET_WARN_THRESHOLD,
                )
        return modulated_deform_conv2d(input, offset, mask, self.weight, self.bias, self.padding)
