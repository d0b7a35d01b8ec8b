"""Shared building blocks (networks.md §3) with the upstream attribute names, and the network base class."""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvBlock",
    "DeconvBlock",
    "DownBlock",
    "ResnetBlock",
    "UpBlock",
    "VSRNetwork",
    "check_scale_frames",
    "init_weights",
    "make_act",
    "pad_to_multiple",
]


def make_act(name: str | None) -> nn.Module | None:
    """Return a fresh activation module for ``name`` ("prelu", "lrelu", "relu", "gelu" or None)."""
    if name is None:
        return None
    table: dict[str, Any] = {
        "prelu": lambda: nn.PReLU(num_parameters=1, init=0.25),
        "lrelu": lambda: nn.LeakyReLU(0.1, inplace=False),
        "relu": lambda: nn.ReLU(inplace=False),
        "gelu": nn.GELU,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(table))}")
    act: nn.Module = table[name]()
    return act


class ConvBlock(nn.Module):
    """``Conv2d`` followed by its own activation (PReLU by default); ``conv`` and ``act``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        *,
        bias: bool = True,
        activation: str | None = "prelu",
    ) -> None:
        """Build ``conv`` (padding defaults to kernel_size // 2) and ``act``."""
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, bias=bias)
        self.act = make_act(activation)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the conv then the activation."""
        y = self.conv(x)
        return y if self.act is None else self.act(y)


class DeconvBlock(nn.Module):
    """``ConvTranspose2d`` (k8 s4 p2 by default: h → 4h) followed by its own PReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 8,
        stride: int = 4,
        padding: int = 2,
        *,
        bias: bool = True,
        activation: str | None = "prelu",
    ) -> None:
        """Build ``deconv`` and ``act``."""
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=bias
        )
        self.act = make_act(activation)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the transposed conv then the activation."""
        y = self.deconv(x)
        return y if self.act is None else self.act(y)


class ResnetBlock(nn.Module):
    """``y = act(conv2(act(conv1(x))) + x)`` with ONE shared PReLU (18c² + 2c + 1 params)."""

    def __init__(self, channels: int, kernel_size: int = 3, *, activation: str = "prelu") -> None:
        """Build ``conv1``, ``conv2`` and the shared ``act``."""
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, 1, pad, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, 1, pad, bias=True)
        act = make_act(activation)
        assert act is not None
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        """Residual block with the activation applied after conv1 and after the skip addition."""
        return self.act(self.conv2(self.act(self.conv1(x))) + x)


class UpBlock(nn.Module):
    """DBPN up-projection: ``h0 = D1(x); l0 = C2(h0); h1 = D3(l0 − x); out = h0 + h1``."""

    def __init__(
        self, channels: int, kernel_size: int = 8, stride: int = 4, padding: int = 2
    ) -> None:
        """Build ``up_conv1`` (deconv), ``up_conv2`` (strided conv), ``up_conv3`` (deconv)."""
        super().__init__()
        self.up_conv1 = DeconvBlock(channels, channels, kernel_size, stride, padding)
        self.up_conv2 = ConvBlock(channels, channels, kernel_size, stride, padding)
        self.up_conv3 = DeconvBlock(channels, channels, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        """Project LR → HR with error feedback."""
        h0 = self.up_conv1(x)
        l0 = self.up_conv2(h0)
        h1 = self.up_conv3(l0 - x)
        return h0 + h1


class DownBlock(nn.Module):
    """DBPN down-projection: ``l0 = C1(x); h0 = D2(l0); l1 = C3(h0 − x); out = l0 + l1``."""

    def __init__(
        self, channels: int, kernel_size: int = 8, stride: int = 4, padding: int = 2
    ) -> None:
        """Build ``down_conv1`` (strided conv), ``down_conv2`` (deconv), ``down_conv3`` (conv)."""
        super().__init__()
        self.down_conv1 = ConvBlock(channels, channels, kernel_size, stride, padding)
        self.down_conv2 = DeconvBlock(channels, channels, kernel_size, stride, padding)
        self.down_conv3 = ConvBlock(channels, channels, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        """Project HR → LR with error feedback."""
        l0 = self.down_conv1(x)
        h0 = self.down_conv2(l0)
        l1 = self.down_conv3(h0 - x)
        return l0 + l1


def check_scale_frames(scale: int, frames: int) -> None:
    """Raise ``ValueError`` unless ``scale == 4`` and ``frames == 5`` (networks.md §2)."""
    if scale != 4:
        raise ValueError(f"scale must be 4 (x4 only), got {scale}")
    if frames != 5:
        raise ValueError(f"frames must be 5, got {frames}")


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` for any width/depth value that is not a positive integer."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _pad_axis(x: Tensor, pad: int, dim: int) -> Tensor:
    """Pad ``x`` at the end of ``dim`` (-1 or -2): reflect, or replicate when pad >= size."""
    if pad == 0:
        return x
    size = x.shape[dim]
    mode = "reflect" if pad < size else "replicate"
    spec = (0, pad, 0, 0) if dim == -1 else (0, 0, 0, pad)
    return F.pad(x, spec, mode=mode)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad the last two dims of ``x`` (any rank ≥ 3) at the bottom/right to multiples of ``multiple``.

    Reflect padding is used when the pad is smaller than the size, replicate padding otherwise.
    Returns ``x`` itself when no padding is needed (callers must not modify it in place).
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    lead = x.shape[:-2]
    y = x.reshape(-1, 1, h, w)
    y = _pad_axis(y, ph, -2)
    y = _pad_axis(y, pw, -1)
    return y.reshape(*lead, h + ph, w + pw)


def init_weights(module: nn.Module, *, zero_init_offsets: bool = False) -> None:
    """Initialise a network as upstream does (networks.md §8).

    Conv2d/ConvTranspose2d: Kaiming normal (fan_in, gain √2), zero bias — including the DCN's
    offset/mask conv, so offsets start random unless ``zero_init_offsets``. DCN main weight:
    uniform ±1/√(C_in·k²), zero bias. PReLU: 0.25. Linear: trunc_normal(0.02), zero bias.
    LayerNorm: 1 / 0. Relative position bias tables: trunc_normal(0.02).
    """
    from satvsr_cli.models.deform import DCNSep  # local import: deform imports this module

    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.PReLU):
            nn.init.constant_(m.weight, 0.25)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, DCNSep):
            fan_in = m.in_channels * m.kernel_size * m.kernel_size
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
            if zero_init_offsets:
                nn.init.zeros_(m.conv_offset_mask.weight)
                if m.conv_offset_mask.bias is not None:
                    nn.init.zeros_(m.conv_offset_mask.bias)
        table = getattr(m, "relative_position_bias_table", None)
        if isinstance(table, nn.Parameter):
            nn.init.trunc_normal_(table, std=0.02)


class VSRNetwork(nn.Module):
    """Base class of every satvsr network: the (B, 5, 3, h, w) → (B, 3, 4h, 4w) contract.

    Subclasses implement :meth:`extract` (per-frame features) and :meth:`forward_window`; this
    class pads to ``size_multiple``, runs both, and crops the output back.
    """

    scale: int = 4
    frames: int = 5
    size_multiple: int = 1
    feat_channels: int = 0
    residual: bool = False

    def _setup_residual(self, residual: bool, last: nn.Module) -> None:
        """Enable the global bicubic skip (upstream's ``--residual`` flag; off in the papers).

        With the skip, the network predicts a correction to the bicubic ×4 upsampling of the
        centre frame, and ``last`` (the conv that makes the 3 output channels) starts at zero, so
        an untrained network already equals bicubic. This makes the short CPU trainings of the
        small presets converge far faster; the paper configurations keep it off.
        """
        self.residual = bool(residual)
        if self.residual:
            for p in last.parameters():
                nn.init.zeros_(p)

    def _add_residual(self, clip: Tensor, out: Tensor) -> Tensor:
        """Add the bicubic ×4 of the centre frame to ``out`` when the skip is enabled."""
        if not self.residual:
            return out
        centre = clip[:, self.frames // 2]
        up = F.interpolate(centre, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out + up.to(out.dtype)

    def extract(self, frames: Tensor) -> Tensor:
        """Per-frame features: ``(N, 3, h, w)`` → ``(N, feat_channels, h, w)``."""
        raise NotImplementedError

    def record_alignment(self, on: bool) -> None:
        """Keep (or stop keeping) the deformable offsets of each forward, for
        :meth:`alignment_loss` during training."""
        from satvsr_cli.models.deform import DCNSep

        for m in self.modules():
            if isinstance(m, DCNSep):
                m.keep_offset = on
                m.last_offset = None

    def alignment_loss(self, clip: Tensor) -> Tensor | None:
        """An auxiliary loss on the alignment of the last forward of ``clip``, or ``None`` when
        the network has none (see :func:`satvsr_cli.models.alignment.photometric_alignment_loss`)."""
        return None

    def forward_window(self, clip: Tensor, feats: Tensor) -> Tensor:
        """``clip`` (B, 5, 3, h, w) and ``feats`` (B, 5, F, h, w) → (B, 3, 4h, 4w); h, w padded."""
        raise NotImplementedError

    def _check_clip(self, clip: Tensor) -> None:
        """Raise ``ValueError`` unless ``clip`` is (B, 5, 3, h, w)."""
        if clip.dim() != 5 or clip.shape[1] != self.frames or clip.shape[2] != 3:
            raise ValueError(
                f"expected a clip of shape (B, {self.frames}, 3, h, w), got {tuple(clip.shape)}"
            )

    def _check_window(self, clip: Tensor, feats: Tensor) -> None:
        """Validate the arguments of :meth:`forward_window`."""
        self._check_clip(clip)
        b, t, _, h, w = clip.shape
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(
                f"forward_window needs h, w multiples of {self.size_multiple}, got {h}x{w}"
            )
        expected = (b, t, self.feat_channels, h, w)
        if tuple(feats.shape) != expected:
            raise ValueError(f"expected feats of shape {expected}, got {tuple(feats.shape)}")

    def forward(self, clip: Tensor) -> Tensor:
        """Super-resolve the centre frame: ``(B, 5, 3, h, w)`` in [0, 1] → ``(B, 3, 4h, 4w)``.

        Any h, w ≥ 1: the frames are padded at the bottom/right to ``size_multiple`` and the
        output is cropped back. The output is not clamped; the input is never modified.
        """
        self._check_clip(clip)
        b, t, _, h, w = clip.shape
        padded = pad_to_multiple(clip, self.size_multiple)
        feats = self.extract(padded.flatten(0, 1)).unflatten(0, (b, t))
        out = self.forward_window(padded, feats)
        return out[..., : self.scale * h, : self.scale * w]
