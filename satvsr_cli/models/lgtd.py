"""LGTD: local-global temporal difference network with HAT or ResNet reconstruction (networks.md §7)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satvsr_cli.models.alignment import MSD, TSAFusion
from satvsr_cli.models.blocks import (
    ConvBlock,
    ResnetBlock,
    VSRNetwork,
    check_positive,
    check_scale_frames,
    init_weights,
)

__all__ = ["LGTD", "TDMLong", "TDMShort", "checkpoint_filter_fn"]


def _up2_ac(x: Tensor) -> Tensor:
    """Bilinear ×2 upsampling with ``align_corners=True``."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class TDMShort(nn.Module):
    """S-TDM (``tdm_s``): short-term RGB differences → a ``nf``-channel LR feature (1,038,343 params).

    Args:
        nf: output channels (the trunk width, 64).
        base: internal width (128).
        diff_nf: channels of each difference feature (64).
    """

    def __init__(self, nf: int = 64, base: int = 128, diff_nf: int = 64, nframes: int = 5) -> None:
        """Build ``feat_diff``, ``conv1``, ``res_feat1``, ``feat0``, ``res_feat2``."""
        super().__init__()
        self.nframes = nframes
        self.feat_diff = ConvBlock(3, diff_nf, 3)
        self.conv1 = ConvBlock((nframes - 1) * diff_nf, base, 3)
        self.res_feat1 = nn.Sequential(ResnetBlock(base), ConvBlock(base, nf, 3))
        self.feat0 = ConvBlock(3, base, 3)
        self.res_feat2 = nn.Sequential(ResnetBlock(base), ConvBlock(base, nf, 3))
        self.pool = nn.AvgPool2d(2, 2)

    def forward(self, clip: Tensor) -> Tensor:
        """``(B, 5, 3, h, w)`` (h, w even) → ``(B, nf, h, w)``."""
        b, t, c, h, w = clip.shape
        diffs = (clip[:, :-1] - clip[:, 1:]).reshape(b * (t - 1), c, h, w)  # D_i = I_i − I_{i+1}
        d = self.pool(self.feat_diff(diffs))
        d = d.reshape(b, -1, d.shape[-2], d.shape[-1])  # cat[d_0, d_1, d_2, d_3]
        s = self.conv1(d)
        u1 = _up2_ac(self.res_feat1(s))
        u2 = _up2_ac(s)
        centre = self.res_feat2(0.5 * self.feat0(clip[:, t // 2]) + 0.5 * u2)
        out: Tensor = 0.5 * centre + 0.5 * u1
        return out


class TDMLong(nn.Module):
    """L-TDM (``tdm_l``): long-term forward/backward feature differences (479,813 params at 64).

    ``compat=False`` (default) follows the paper: ``fwd`` from the forward-ordered features and
    ``bwd`` from the reversed ones. ``compat=True`` reproduces the released code, where an aliased
    list makes ``fwd`` come from the reversed order too (``fwd == bwd``).
    """

    def __init__(self, nf: int = 64, nframes: int = 5, *, compat: bool = False) -> None:
        """Build ``compress_3``, ``conv1``..``conv4`` (the dead upstream ``fus`` is not built)."""
        super().__init__()
        self.compat = compat
        self.compress_3 = ConvBlock(nframes * nf, nf, 3)
        self.conv1 = ConvBlock(nf, nf, 3)
        self.conv2 = ConvBlock(nf, nf, 3)
        self.conv3 = ConvBlock(nf, nf, 3)
        self.conv4 = ConvBlock(nf, nframes * nf, 3)
        self.pool = nn.AvgPool2d(2, 2)

    def branches(self, aligned: Tensor) -> tuple[Tensor, Tensor]:
        """The forward and backward features ``(fwd, bwd)``, each (B, nf, h, w)."""
        b, t, c, h, w = aligned.shape
        rcat = aligned.flip(1).reshape(b, t * c, h, w)
        if self.compat:
            r = self.conv1(self.compress_3(rcat))
            return r, r
        fcat = aligned.reshape(b, t * c, h, w)
        both = self.conv1(self.compress_3(torch.cat([fcat, rcat], dim=0)))
        return both[:b], both[b:]

    def forward(self, aligned: Tensor) -> Tensor:
        """``(B, 5, nf, h, w)`` (h, w even) → ``(B, 5·nf, h, w)`` in forward frame order."""
        b, t, c, h, w = aligned.shape
        fcat = aligned.reshape(b, t * c, h, w)
        fwd, bwd = self.branches(aligned)
        if self.compat:
            # fwd == bwd, so both difference terms are exactly zero and a_f == a_b.
            att = torch.sigmoid(self.conv4(self.conv2(fwd) + _up2_ac(self.conv3(self.pool(fwd)))))
            return (att + att) * fcat + fcat
        x = torch.cat([fwd, bwd], dim=0)
        pyr = _up2_ac(self.conv3(self.pool(x)))
        diff = torch.cat([fwd - bwd, bwd - fwd], dim=0)
        att = torch.sigmoid(self.conv4(diff + self.conv2(x) + pyr))
        return (att[:b] + att[b:]) * fcat + fcat


class LGTD(VSRNetwork):
    """LGTD ×4 for 5 frames. Defaults: the paper-like HAT head with 5 RHAGs (20,980,929 params).

    Args:
        head: ``"hat"`` (HAT reconstruction, attribute ``hat``) or ``"resnet"`` (``embedding``,
            ``reconstruction``, ``conv_before_upsample``, ``upsample``, ``conv_last``).
        nf: trunk width (64): per-frame features, MSD, TSA, L-TDM, S-TDM output.
        groups: deformable groups of the MSD (8).
        n_ext_resblock: residual blocks of the per-frame extractor ``res_feat_ext`` (5).
        n_comp_resblock: residual blocks of the difference-compensation unit ``res_feat2`` (5).
        stdm_nf: S-TDM internal width (128). stdm_diff_nf: S-TDM difference features (64).
        head_nf: reconstruction width (180). n_head_blocks: RHAGs (HAT) or residual blocks
            (ResNet), 5. upsample_nf: width of the pixel-shuffle upsampler (64).
        hat_depth, num_heads, window_size, mlp_ratio, drop_path_rate, hat_squeeze_factor: HAT
            only (6, 6, 16, 2, 0.1, 30: the channel-attention squeeze of every CAB).
        ltdm_compat: reproduce the released L-TDM aliasing (default False: the paper's intent).
        zero_init_offsets: zero the DCN offset/mask conv after the Kaiming init.
        max_offset: bound on the deformable offsets in LR px (``m·tanh(o/m)``; default
            unbounded, as upstream).
        residual: add the bicubic ×4 of the centre frame to the output and start the last conv
            at zero (upstream's ``--residual`` option; off in the paper configuration).
        scale, frames: must be 4 and 5.
    """

    def __init__(
        self,
        *,
        head: str = "hat",
        nf: int = 64,
        groups: int = 8,
        n_ext_resblock: int = 5,
        n_comp_resblock: int = 5,
        stdm_nf: int = 128,
        stdm_diff_nf: int = 64,
        head_nf: int = 180,
        n_head_blocks: int = 5,
        upsample_nf: int = 64,
        hat_depth: int | None = None,
        num_heads: int | None = None,
        window_size: int | None = None,
        mlp_ratio: float | None = None,
        drop_path_rate: float | None = None,
        hat_squeeze_factor: int | None = None,
        ltdm_compat: bool = False,
        zero_init_offsets: bool = False,
        residual: bool = False,
        max_offset: float | None = None,
        scale: int = 4,
        frames: int = 5,
    ) -> None:
        """Build the network; see the class docstring."""
        super().__init__()
        check_scale_frames(scale, frames)
        check_positive(
            nf=nf,
            groups=groups,
            stdm_nf=stdm_nf,
            stdm_diff_nf=stdm_diff_nf,
            head_nf=head_nf,
            n_head_blocks=n_head_blocks,
            upsample_nf=upsample_nf,
        )
        for key, value in (
            ("n_ext_resblock", n_ext_resblock),
            ("n_comp_resblock", n_comp_resblock),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        if head not in ("hat", "resnet"):
            raise ValueError(f"head must be 'hat' or 'resnet', got {head!r}")
        hat_only = {
            "hat_depth": hat_depth,
            "num_heads": num_heads,
            "window_size": window_size,
            "mlp_ratio": mlp_ratio,
            "drop_path_rate": drop_path_rate,
            "hat_squeeze_factor": hat_squeeze_factor,
        }
        if head == "resnet":
            given = [k for k, v in hat_only.items() if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to head='hat'")
        self.head = head
        self.feat_channels = nf

        self.fea0 = ConvBlock(3, nf, 3)
        self.fea_all = ConvBlock(3, nf, 3)
        self.res_feat_ext = nn.Sequential(*[ResnetBlock(nf) for _ in range(n_ext_resblock)])
        self.tdm_s = TDMShort(nf, stdm_nf, stdm_diff_nf, frames)
        self.tdm_l = TDMLong(nf, frames, compat=ltdm_compat)
        self.fus = nn.Conv2d(frames * nf, nf, 3, 1, 1)
        self.msd = MSD(nf, groups, max_offset)
        self.TSA_Fusion = TSAFusion(nf, frames, frames // 2)
        self.res_feat2 = nn.Sequential(*[ResnetBlock(nf) for _ in range(n_comp_resblock)])

        if head == "hat":
            from satvsr_cli.models.hat import HAT

            ws = 16 if window_size is None else window_size
            self.hat = HAT(
                in_chans=nf,
                embed_dim=head_nf,
                n_groups=n_head_blocks,
                depth=6 if hat_depth is None else hat_depth,
                num_heads=6 if num_heads is None else num_heads,
                window_size=ws,
                mlp_ratio=2.0 if mlp_ratio is None else mlp_ratio,
                drop_path_rate=0.1 if drop_path_rate is None else drop_path_rate,
                num_feat=upsample_nf,
                squeeze_factor=30 if hat_squeeze_factor is None else hat_squeeze_factor,
            )
            self.size_multiple = _lcm(4, ws)
        else:
            self.embedding = nn.Conv2d(nf, head_nf, 3, 1, 1)
            self.reconstruction = nn.Sequential(
                *[ResnetBlock(head_nf) for _ in range(n_head_blocks)]
            )
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(head_nf, upsample_nf, 3, 1, 1), nn.LeakyReLU(0.01)
            )
            self.upsample = nn.Sequential(
                nn.Conv2d(upsample_nf, 4 * upsample_nf, 3, 1, 1),
                nn.PixelShuffle(2),
                nn.Conv2d(upsample_nf, 4 * upsample_nf, 3, 1, 1),
                nn.PixelShuffle(2),
            )
            self.conv_last = nn.Conv2d(upsample_nf, 3, 3, 1, 1)
            self.size_multiple = 4
        init_weights(self, zero_init_offsets=zero_init_offsets)
        self._setup_residual(residual, self.hat.conv_last if head == "hat" else self.conv_last)

    def extract(self, frames: Tensor) -> Tensor:
        """Per-frame features ``res_feat_ext(fea_all(I))``: (N, 3, h, w) → (N, nf, h, w)."""
        return self.res_feat_ext(self.fea_all(frames))

    def trunk(self, clip: Tensor, feats: Tensor) -> Tensor:
        """The shared trunk: clip and per-frame features → the fused ``nf``-channel LR feature."""
        b, t, c, h, w = feats.shape
        centre = t // 2
        f_s = self.fea0(clip[:, centre]) + self.tdm_s(clip)
        ref = feats[:, centre].unsqueeze(1).expand(b, t, c, h, w)
        aligned = self.msd(feats.reshape(b * t, c, h, w), ref.reshape(b * t, c, h, w))
        aligned = aligned.view(b, t, c, h, w)
        fea = self.TSA_Fusion(aligned)
        long_term = self.fus(self.tdm_l(aligned))
        fea = fea + self.res_feat2(fea - long_term)
        out: Tensor = fea + f_s
        return out

    def reconstruct(self, fea: Tensor) -> Tensor:
        """Apply the reconstruction head: (B, nf, h, w) → (B, 3, 4h, 4w)."""
        if self.head == "hat":
            out: Tensor = self.hat(fea)
            return out
        x = self.reconstruction(self.embedding(fea))
        x = self.upsample(self.conv_before_upsample(x))
        out = self.conv_last(x)
        return out

    def forward_window(self, clip: Tensor, feats: Tensor) -> Tensor:
        """``clip`` (B, 5, 3, h, w) with ``feats`` (B, 5, nf, h, w) → (B, 3, 4h, 4w)."""
        self._check_window(clip, feats)
        return self._add_residual(clip, self.reconstruct(self.trunk(clip, feats)))


def _lcm(a: int, b: int) -> int:
    """Least common multiple."""
    return a * b // math.gcd(a, b)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map an upstream-style LGTD state dict to satvsr names.

    Strips a DataParallel ``module.`` prefix, drops the dead L-TDM ``tdm_l.fus.*`` conv and, when
    the state dict is the ResNet variant (it has ``embedding.weight``), the unused ``hat.*`` keys.
    """
    stripped = {k.removeprefix("module."): v for k, v in state_dict.items()}
    resnet = "embedding.weight" in stripped
    return {
        k: v
        for k, v in stripped.items()
        if not k.startswith("tdm_l.fus.") and not (resnet and k.startswith("hat."))
    }
