"""LGTD: local-global temporal difference network with HAT or ResNet reconstruction (networks.md §7)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satvsr_cli.models.alignment import (
    MSD,
    TSAFusion,
    offset_flow,
    photometric_alignment_loss,
)
from satvsr_cli.models.blocks import (
    ConvBlock,
    ResnetBlock,
    VSRNetwork,
    check_positive,
    check_scale_frames,
    init_weights,
    pad_to_multiple,
)

__all__ = ["LGTD", "TDMLong", "TDMShort", "checkpoint_filter_fn", "ocab_upstream_shift"]


def _up2(x: Tensor, local: bool) -> Tensor:
    """Bilinear ×2 upsampling: upstream's ``align_corners=True``, or ``local`` (``False``).

    With ``align_corners=True`` the sampling positions depend on the input's size, so a tile's
    output depends on the tile size; ``align_corners=False`` samples at fixed half-pixel
    positions, a local operation that gives the same result tiled and untiled.
    """
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=not local)


class TDMShort(nn.Module):
    """S-TDM (``tdm_s``): short-term RGB differences → a ``nf``-channel LR feature (1,038,343 params).

    Args:
        nf: output channels (the trunk width, 64).
        base: internal width (128).
        diff_nf: channels of each difference feature (64).
    """

    def __init__(self, nf: int = 64, base: int = 128, diff_nf: int = 64, nframes: int = 5, *,
                 local: bool = False) -> None:
        """Build ``feat_diff``, ``conv1``, ``res_feat1``, ``feat0``, ``res_feat2``."""
        super().__init__()
        self.nframes = nframes
        self.local = local
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
        u1 = _up2(self.res_feat1(s), self.local)
        u2 = _up2(s, self.local)
        centre = self.res_feat2(0.5 * self.feat0(clip[:, t // 2]) + 0.5 * u2)
        out: Tensor = 0.5 * centre + 0.5 * u1
        return out


class TDMLong(nn.Module):
    """L-TDM (``tdm_l``): long-term forward/backward feature differences (479,813 params at 64).

    ``compat=False`` (default) follows the paper: ``fwd`` from the forward-ordered features and
    ``bwd`` from the reversed ones. ``compat=True`` reproduces the released code, where an aliased
    list makes ``fwd`` come from the reversed order too (``fwd == bwd``).
    """

    def __init__(self, nf: int = 64, nframes: int = 5, *, compat: bool = False,
                 local: bool = False) -> None:
        """Build ``compress_3``, ``conv1``..``conv4`` (the dead upstream ``fus`` is not built)."""
        super().__init__()
        self.compat = compat
        self.local = local
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
            att = torch.sigmoid(self.conv4(self.conv2(fwd) + _up2(self.conv3(self.pool(fwd)), self.local)))
            return (att + att) * fcat + fcat
        x = torch.cat([fwd, bwd], dim=0)
        pyr = _up2(self.conv3(self.pool(x)), self.local)
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
        local_upsample: the S-TDM/L-TDM ×2 upsampling with ``align_corners=False`` (a local
            operation: tiled output equals untiled output) instead of upstream's
            ``align_corners=True`` (default False: the paper configurations keep upstream).
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
        local_upsample: bool = False,
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
        self.tdm_s = TDMShort(nf, stdm_nf, stdm_diff_nf, frames, local=local_upsample)
        self.tdm_l = TDMLong(nf, frames, compat=ltdm_compat, local=local_upsample)
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

    def alignment_loss(self, clip: Tensor) -> Tensor | None:
        """Photometric loss of the MSD offsets of the last forward (``record_alignment(True)``):
        each frame of ``clip`` warped by the mean shift of its deformable offsets must match the
        centre frame. Without it, the small presets learned one fixed offset pattern for every
        frame (the alignment did not follow motion)."""
        offset = self.msd.dcnpack.last_offset
        if offset is None:
            return None
        b, t = clip.shape[:2]
        h, w = offset.shape[-2:]
        frames = pad_to_multiple(clip, self.size_multiple)[..., :h, :w]
        frames = frames.reshape(b * t, *frames.shape[2:])
        ref = frames.view(b, t, *frames.shape[1:])[:, t // 2].repeat_interleave(t, dim=0)
        flow = offset_flow(offset, self.msd.dcnpack.kernel_size ** 2)
        return photometric_alignment_loss(frames, ref, flow)

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


#: Persistent buffers of upstream HAT (the relative position indices of the window attention and
#: of OCAB): recomputed by satvsr, so they are checked and dropped.
_UPSTREAM_INDEX_BUFFERS = ("relative_position_index_SA", "relative_position_index_OCA")
_OCAB_TABLE = ".overlap_attn.relative_position_bias_table"
_SA_TABLE = ".attn.relative_position_bias_table"


def ocab_upstream_shift(window_size: int, overlap_window_size: int) -> int:
    """Rows by which upstream HAT's OCAB bias table is rolled against satvsr's.

    Both index the table, per axis, by ``a + c`` with ``a = k − q`` (a key pixel's position in its
    ``ows`` window minus the query pixel's position in its ``ws`` window) and combine the axes as
    ``iy·S + ix`` with ``S = ws + ows − 1``. satvsr uses ``c = ws − 1``, so every index lies in
    ``[0, S²)``; upstream uses ``c = ws − ows + 1``, so its indices start at
    ``−(ows − 2)(S + 1)`` and the negative ones wrap to the end of the table. satvsr row ``r`` is
    therefore upstream row ``(r − shift) mod S²`` with ``shift = (ows − 2)(S + 1) =
    (ows − 2)(ws + ows)``, i.e. ``ours = roll(upstream, shift, 0)``: 880 of 1,521 rows for the
    default 16/24 windows.
    """
    return (overlap_window_size - 2) * (window_size + overlap_window_size)


def _side(rows: int, what: str) -> int:
    side = math.isqrt(rows)
    if side * side != rows:
        raise ValueError(f"{what} has {rows} rows, not a square number")
    return side


def _ocab_permutation(index: Tensor, ws: int, ows: int) -> Tensor:
    """Upstream row of every satvsr row, read from an upstream OCAB index buffer ``(ws², ows²)``."""
    from satvsr_cli.models.hat import overlap_position_index

    ours = overlap_position_index(ws, ows)
    rows = (ws + ows - 1) ** 2
    if tuple(index.shape) != tuple(ours.shape):
        raise ValueError(
            f"relative_position_index_OCA has shape {tuple(index.shape)}, "
            f"expected {tuple(ours.shape)} for windows {ws}/{ows}"
        )
    theirs = index.long() % rows
    perm = torch.full((rows,), -1, dtype=torch.long)
    perm[ours.reshape(-1)] = theirs.reshape(-1)
    # one upstream row per satvsr row: every (query, key) pair with the same offset agrees
    if (perm[ours] != theirs).any() or torch.unique(perm).numel() != rows:
        raise ValueError("relative_position_index_OCA is not a relative-position index")
    return perm


def checkpoint_filter_fn(
    state_dict: Mapping[str, Tensor], model: nn.Module | None = None
) -> dict[str, Tensor]:
    """Map an upstream-style LGTD state dict to satvsr names and layouts.

    - strips a DataParallel ``module.`` prefix;
    - drops the dead L-TDM ``tdm_l.fus.*`` conv and, for the ResNet variant (it has
      ``embedding.weight``), the unused ``hat.*`` keys;
    - drops upstream HAT's persistent ``relative_position_index_SA`` / ``_OCA`` buffers after
      checking them: the SA index must be the standard window index, and the OCA index tells how
      the OCAB bias tables are laid out;
    - reorders every OCAB ``relative_position_bias_table`` to satvsr's indexing: the permutation
      read from the OCA index when the state dict has one, else ``roll`` by
      :func:`ocab_upstream_shift` (the upstream layout). A table already in satvsr's layout (an
      OCA index equal to satvsr's) is kept as it is.

    Window sizes come from ``model`` (its ``hat``) when given, else from the OCA index or the
    table shapes.

    Raises:
        ValueError: an index buffer or table that fits no window size.
    """
    from satvsr_cli.models.hat import relative_position_index

    stripped = {k.removeprefix("module."): v for k, v in state_dict.items()}
    resnet = "embedding.weight" in stripped
    out: dict[str, Tensor] = {}
    buffers: dict[str, Tensor] = {}
    for key, value in stripped.items():
        if key.startswith("tdm_l.fus.") or (resnet and key.startswith("hat.")):
            continue
        if key.rsplit(".", 1)[-1] in _UPSTREAM_INDEX_BUFFERS:
            buffers[key.rsplit(".", 1)[-1]] = value
            continue
        out[key] = value
    sa_tables = [k for k in out if k.endswith(_SA_TABLE)]
    oca_tables = [k for k in out if k.endswith(_OCAB_TABLE)]
    if not oca_tables and not sa_tables:
        return out
    hat = getattr(model, "hat", None)
    oca = buffers.get("relative_position_index_OCA")
    if hat is not None:
        ws = int(hat.window_size)
        ows = int(hat.layers[0].residual_group.overlap_attn.overlap_win_size)
    elif oca is not None and oca.dim() == 2:
        ws = _side(oca.shape[0], "relative_position_index_OCA")
        ows = _side(oca.shape[1], "relative_position_index_OCA")
    else:
        if not sa_tables or not oca_tables:
            raise ValueError("HAT keys without both window and OCAB position bias tables")
        ws = (_side(out[sa_tables[0]].shape[0], sa_tables[0]) + 1) // 2
        ows = _side(out[oca_tables[0]].shape[0], oca_tables[0]) + 1 - ws
    sa = buffers.get("relative_position_index_SA")
    if sa is not None and not torch.equal(sa.long(), relative_position_index(ws)):
        raise ValueError(f"relative_position_index_SA does not match window size {ws}")
    if oca is not None:
        perm = _ocab_permutation(oca, ws, ows)
    else:
        rows = (ws + ows - 1) ** 2
        perm = (torch.arange(rows) - ocab_upstream_shift(ws, ows)) % rows
    for key in oca_tables:
        if out[key].shape[0] != perm.numel():
            raise ValueError(
                f"{key} has {out[key].shape[0]} rows, expected {perm.numel()} for windows {ws}/{ows}"
            )
        out[key] = out[key][perm].contiguous()
    return out
