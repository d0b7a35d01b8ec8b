"""MSDTGP: multiscale deformable alignment + temporal grouping projection (networks.md §6)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from satvsr_cli.models.alignment import MSD, TemporalAttention
from satvsr_cli.models.blocks import (
    ConvBlock,
    DeconvBlock,
    DownBlock,
    ResnetBlock,
    UpBlock,
    VSRNetwork,
    check_positive,
    check_scale_frames,
    init_weights,
)

__all__ = ["DBPNS", "MSDTGP", "checkpoint_filter_fn"]

#: Frame indices of the two temporal groups: the far group first, then the near group.
GROUP_FAR = (0, 2, 4)
GROUP_NEAR = (1, 2, 3)


class DBPNS(nn.Module):
    """The single-image DBPN branch: ``base_filter`` LR channels → ``feat`` HR channels.

    ``num_stages`` up-projections interleaved with ``num_stages − 1`` down-projections
    (upstream: 3, i.e. ``up1, down1, up2, down2, up3``); the output conv fuses the up-projection
    maps in reverse order (``h3, h2, h1``).
    """

    def __init__(self, base_filter: int = 256, feat: int = 64, num_stages: int = 3) -> None:
        """Build ``feat1``, ``up1..upN``, ``down1..down(N−1)`` and ``output``."""
        super().__init__()
        check_positive(base_filter=base_filter, feat=feat, num_stages=num_stages)
        self.num_stages = num_stages
        self.feat1 = ConvBlock(base_filter, feat, 1, 1, 0)
        for i in range(1, num_stages + 1):
            self.add_module(f"up{i}", UpBlock(feat))
            if i < num_stages:
                self.add_module(f"down{i}", DownBlock(feat))
        self.output = ConvBlock(num_stages * feat, feat, 1, 1, 0, activation=None)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, base_filter, h, w)`` → ``(B, feat, 4h, 4w)``."""
        x = self.feat1(x)
        hs = [self.get_submodule("up1")(x)]
        for i in range(1, self.num_stages):
            low = self.get_submodule(f"down{i}")(hs[-1])
            hs.append(self.get_submodule(f"up{i + 1}")(low))
        return self.output(hs[0] if len(hs) == 1 else torch.cat(hs[::-1], dim=1))


class MSDTGP(VSRNetwork):
    """MSDTGP ×4 for 5 frames. Defaults are the paper configuration (14,174,083 params).

    Args:
        base_filter: LR channels of the projection path (``feat0``, ``fusion1``, ``res_feat1``).
        feat: HR feature channels (DBPN, ``res_feat2/3``, TAtt).
        nf: per-frame LR feature / alignment channels (``feat_all``, ``res_feat_ext``, MSD);
            defaults to ``feat`` as upstream.
        num_stages: DBPN up-projections (upstream 3).
        n_resblock: residual blocks in ``res_feat1`` (LR); upstream 5.
        n_resblock_hr: residual blocks in ``res_feat2``/``res_feat3`` (HR); defaults to
            ``n_resblock``.
        n_ext_resblock: residual blocks of the per-frame extractor (upstream 3).
        groups: deformable groups of the MSD alignment (upstream 8).
        zero_init_offsets: zero the DCN offset/mask convs after the Kaiming init (upstream: no).
        max_offset: bound on the deformable offsets in LR px (``m·tanh(o/m)``; default
            unbounded, as upstream).
        residual: add the bicubic ×4 of the centre frame to the output and start the output
            conv at zero (upstream's ``--residual`` option, default off as upstream).
        scale, frames: must be 4 and 5.
    """

    size_multiple = 1

    def __init__(
        self,
        *,
        base_filter: int = 256,
        feat: int = 64,
        nf: int | None = None,
        num_stages: int = 3,
        n_resblock: int = 5,
        n_resblock_hr: int | None = None,
        n_ext_resblock: int = 3,
        groups: int = 8,
        zero_init_offsets: bool = False,
        residual: bool = False,
        max_offset: float | None = None,
        scale: int = 4,
        frames: int = 5,
        num_channels: int = 3,
    ) -> None:
        """Build the network; see the class docstring."""
        super().__init__()
        check_scale_frames(scale, frames)
        if num_channels != 3:
            raise ValueError(f"num_channels must be 3 (RGB), got {num_channels}")
        nf = feat if nf is None else nf
        n_hr = n_resblock if n_resblock_hr is None else n_resblock_hr
        check_positive(base_filter=base_filter, feat=feat, nf=nf, groups=groups)
        for key, value in (
            ("n_resblock", n_resblock),
            ("n_resblock_hr", n_hr),
            ("n_ext_resblock", n_ext_resblock),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        self.feat_channels = nf

        self.feat0 = ConvBlock(3, base_filter, 3)
        self.feat_all = ConvBlock(3, nf, 3)
        self.res_feat_ext = nn.Sequential(*[ResnetBlock(nf) for _ in range(n_ext_resblock)])
        self.DBPN = DBPNS(base_filter, feat, num_stages)
        self.alignment1 = MSD(nf, groups, max_offset)
        self.fusion1 = ConvBlock(3 * nf, base_filter, 3)
        self.res_feat1 = nn.Sequential(
            *[ResnetBlock(base_filter) for _ in range(n_resblock)],
            DeconvBlock(base_filter, feat, 8, 4, 2),
        )
        self.res_feat2 = nn.Sequential(
            *[ResnetBlock(feat) for _ in range(n_hr)], ConvBlock(feat, feat, 3)
        )
        self.res_feat3 = nn.Sequential(
            *[ResnetBlock(feat) for _ in range(n_hr)], ConvBlock(feat, base_filter, 8, 4, 2)
        )
        self.TAtt = TemporalAttention(feat, center=0)
        self.output = ConvBlock(3 * feat, 3, 3, activation=None)
        init_weights(self, zero_init_offsets=zero_init_offsets)
        self._setup_residual(residual, self.output)

    def extract(self, frames: Tensor) -> Tensor:
        """Per-frame features ``res_feat_ext(feat_all(I))``: (N, 3, h, w) → (N, nf, h, w)."""
        return self.res_feat_ext(self.feat_all(frames))

    def forward_window(self, clip: Tensor, feats: Tensor) -> Tensor:
        """``clip`` (B, 5, 3, h, w) with ``feats`` (B, 5, nf, h, w) → (B, 3, 4h, 4w)."""
        self._check_window(clip, feats)
        b, t, c, h, w = feats.shape
        ref = feats[:, 2]
        # MSD(F_2, ref) appears in both groups; it is computed once (identical result).
        aligned = self.alignment1(
            feats.reshape(b * t, c, h, w),
            ref.unsqueeze(1).expand(b, t, c, h, w).reshape(-1, c, h, w),
        ).view(b, t, c, h, w)
        groups = torch.cat(
            [
                aligned[:, list(GROUP_FAR)].reshape(b, 3 * c, h, w),
                aligned[:, list(GROUP_NEAR)].reshape(b, 3 * c, h, w),
            ],
            dim=0,
        )
        fused = self.fusion1(groups)  # (2B, base_filter, h, w): far group then near group
        # The LR part of res_feat1 does not depend on the recurrence: both groups run batched.
        # Its closing deconv (LR → HR) runs per group: HR tensors are kept at batch B.
        *lr_blocks, to_hr = self.res_feat1
        lr_all = fused
        for block in lr_blocks:
            lr_all = block(lr_all)
        f_in = self.feat0(clip[:, 2])
        hr: list[Tensor] = []
        for i in range(2):
            h0 = self.DBPN(f_in)
            h1 = to_hr(lr_all[i * b : (i + 1) * b])
            h_i = h0 + self.res_feat2(h0 - h1)
            hr.append(h_i)
            f_in = self.res_feat3(h_i)
        out: Tensor = self.output(self.TAtt([self.DBPN(f_in), hr[0], hr[1]]))
        return self._add_residual(clip, out)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map an upstream MSDTGP checkpoint to satvsr names: strip the DataParallel ``module.`` prefix."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        out[key.removeprefix("module.")] = value
    return out
