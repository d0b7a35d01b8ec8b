"""Alignment and fusion: MSD (networks.md §5), MSDTGP's TAtt (§6.4) and EDVR's TSA fusion (§7.4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satvsr_cli.models.deform import DCNSep

__all__ = ["MSD", "TSAFusion", "TemporalAttention"]


def _lrelu(x: Tensor) -> Tensor:
    """LeakyReLU with slope 0.1."""
    return F.leaky_relu(x, 0.1)


class MSD(nn.Module):
    """Multi-scale deformable alignment of a neighbour feature to a reference (686,168 params at 64)."""

    def __init__(self, nf: int = 64, groups: int = 8, max_offset: float | None = None) -> None:
        """Build the offset branch (3×3, 5×5, 7×7 scales) and the deformable conv ``dcnpack``."""
        super().__init__()
        if groups < 1 or nf % groups != 0:
            raise ValueError(f"nf ({nf}) must be divisible by groups ({groups})")
        self.offset_conv1 = nn.Conv2d(2 * nf, nf, 3, 1, 1)
        self.mul_scale1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.mul_scale2 = nn.Conv2d(nf, nf, 5, 1, 2)
        self.mul_scale3 = nn.Conv2d(nf, nf, 7, 1, 3)
        self.offset_conv2 = nn.Conv2d(3 * nf, nf, 3, 1, 1)
        self.dcnpack = DCNSep(nf, nf, 3, deformable_groups=groups, max_offset=max_offset)

    def forward(self, nbr: Tensor, ref: Tensor) -> Tensor:
        """Align ``nbr`` (B, nf, H, W) to ``ref`` (B, nf, H, W)."""
        o1 = _lrelu(self.offset_conv1(torch.cat([nbr, ref], dim=1)))
        m3 = _lrelu(self.mul_scale1(o1))
        m5 = _lrelu(self.mul_scale2(o1))
        m7 = _lrelu(self.mul_scale3(o1))
        o2 = _lrelu(self.offset_conv2(torch.cat([m3, m5, m7], dim=1)))
        return _lrelu(self.dcnpack(nbr, o1 + o2))


class TemporalAttention(nn.Module):
    """MSDTGP's TAtt: sigmoid correlation weights against the reference (index ``center``)."""

    def __init__(self, nf: int = 64, center: int = 0) -> None:
        """Build ``tAtt_1`` (applied to every map) and ``tAtt_2`` (applied to the reference)."""
        super().__init__()
        self.center = center
        self.tAtt_1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.tAtt_2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, maps: Sequence[Tensor]) -> Tensor:
        """N maps of ``(B, nf, H, W)`` → ``(B, N·nf, H, W)``, each map scaled by its attention.

        The maps are processed one at a time: at HR with few channels, batching them into one
        convolution is several times slower on CPU (memory-bound), and a stack would copy them.
        """
        e_ref = self.tAtt_2(maps[self.center])
        weighted = []
        for fmap in maps:
            prob = torch.sigmoid((self.tAtt_1(fmap) * e_ref).sum(dim=1, keepdim=True))
            weighted.append(fmap * prob)
        return torch.cat(weighted, dim=1)


class TSAFusion(nn.Module):
    """EDVR temporal + spatial attention fusion (324,416 params at nf 64, 5 frames)."""

    def __init__(self, nf: int = 64, nframes: int = 5, center: int = 2) -> None:
        """Build the temporal (``tAtt_*``), fusion and spatial-pyramid attention (``sAtt_*``) convs."""
        super().__init__()
        self.center = center
        self.tAtt_1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.tAtt_2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.fea_fusion = nn.Conv2d(nframes * nf, nf, 1, 1, 0)
        self.sAtt_1 = nn.Conv2d(nframes * nf, nf, 1, 1, 0)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(3, stride=2, padding=1)
        self.sAtt_2 = nn.Conv2d(2 * nf, nf, 1, 1, 0)
        self.sAtt_3 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.sAtt_4 = nn.Conv2d(nf, nf, 1, 1, 0)
        self.sAtt_5 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.sAtt_L1 = nn.Conv2d(nf, nf, 1, 1, 0)
        self.sAtt_L2 = nn.Conv2d(2 * nf, nf, 3, 1, 1)
        self.sAtt_L3 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.sAtt_add_1 = nn.Conv2d(nf, nf, 1, 1, 0)
        self.sAtt_add_2 = nn.Conv2d(nf, nf, 1, 1, 0)

    def forward(self, aligned: Tensor) -> Tensor:
        """``(B, N, nf, H, W)`` aligned features → ``(B, nf, H, W)``; H, W multiples of 4."""
        b, n, c, h, w = aligned.shape
        e_ref = self.tAtt_2(aligned[:, self.center])
        emb = self.tAtt_1(aligned.reshape(b * n, c, h, w)).view(b, n, c, h, w)
        prob = torch.sigmoid((emb * e_ref.unsqueeze(1)).sum(dim=2, keepdim=True))
        x = (aligned * prob).reshape(b, n * c, h, w)

        fea = _lrelu(self.fea_fusion(x))
        att = _lrelu(self.sAtt_1(x))
        att = _lrelu(self.sAtt_2(torch.cat([self.maxpool(att), self.avgpool(att)], dim=1)))
        att_l = _lrelu(self.sAtt_L1(att))
        att_l = _lrelu(self.sAtt_L2(torch.cat([self.maxpool(att_l), self.avgpool(att_l)], dim=1)))
        att_l = _lrelu(self.sAtt_L3(att_l))
        att_l = F.interpolate(att_l, scale_factor=2, mode="bilinear", align_corners=False)
        att = _lrelu(self.sAtt_3(att)) + att_l
        att = _lrelu(self.sAtt_4(att))
        att = F.interpolate(att, scale_factor=2, mode="bilinear", align_corners=False)
        att = self.sAtt_5(att)
        att_add = self.sAtt_add_2(_lrelu(self.sAtt_add_1(att)))
        return fea * torch.sigmoid(att) * 2 + att_add


def offset_flow(offset: Tensor, kernel_taps: int) -> Tensor:
    """The mean sampling shift of deformable offsets ``(B, 2·G·K, H, W)`` → ``(B, 2, H, W)``
    as (dy, dx) in pixels: where, on average over groups and taps, the conv looks."""
    b, _, h, w = offset.shape
    return offset.reshape(b, -1, kernel_taps, 2, h, w).mean(dim=(1, 2))


def warp(frames: Tensor, flow: Tensor) -> Tensor:
    """Sample ``frames`` (B, C, H, W) at ``p + flow`` (flow (B, 2, H, W) as dy, dx in pixels)."""
    h, w = frames.shape[-2:]
    ys = torch.arange(h, device=frames.device, dtype=frames.dtype).view(1, h, 1)
    xs = torch.arange(w, device=frames.device, dtype=frames.dtype).view(1, 1, w)
    gy = (2.0 * (ys + flow[:, 0]) + 1.0) / h - 1.0
    gx = (2.0 * (xs + flow[:, 1]) + 1.0) / w - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def photometric_alignment_loss(frames: Tensor, ref: Tensor, flow: Tensor,
                               eps: float = 1e-3) -> Tensor:
    """Charbonnier distance between ``frames`` warped by ``flow`` and ``ref`` (all (B, C, H, W)).

    The auxiliary training loss that teaches a deformable alignment to follow motion: the
    offsets' mean shift must bring each neighbour onto the reference frame.
    """
    diff = warp(frames, flow) - ref
    return torch.sqrt(diff * diff + eps * eps).mean()

