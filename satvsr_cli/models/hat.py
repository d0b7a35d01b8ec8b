"""HAT reconstruction head (hybrid attention transformer, networks.md §7.6), written from the spec.

Layout and parameter names follow the HAT convention (``conv_first``, ``patch_embed.norm``,
``layers.i.residual_group.blocks.j``, ``layers.i.residual_group.overlap_attn``, ``layers.i.conv``,
``norm``, ``conv_after_body``, ``conv_before_upsample``, ``upsample``, ``conv_last``). The head does
not pad: the input height and width must be multiples of ``window_size`` (the caller pads).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["HAB", "HAT", "OCAB", "RHAG", "DropPath", "WindowAttention"]


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float = 0.0) -> None:
        """Store the drop probability."""
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Identity at eval time or with p == 0; else zero samples and rescale by 1/(1 − p)."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        """Show p in the module repr."""
        return f"p={self.p}"


class Mlp(nn.Module):
    """Two linear layers with GELU: ``fc1`` (C → hidden), ``fc2`` (hidden → C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        """Build ``fc1`` and ``fc2``."""
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(…, C)`` → ``(…, C)``."""
        return self.fc2(self.act(self.fc1(x)))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global average pool, 1×1 conv down, ReLU, 1×1 conv up, sigmoid."""

    def __init__(self, dim: int, squeeze_factor: int = 30) -> None:
        """Build ``attention`` (a Sequential, HAT names ``attention.1`` and ``attention.3``)."""
        super().__init__()
        mid = max(1, dim // squeeze_factor)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, mid, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, dim, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Scale the channels of ``x`` (B, C, H, W)."""
        out: Tensor = x * self.attention(x)
        return out


class CAB(nn.Module):
    """Channel attention block: conv_3(C → C/3), GELU, conv_3(C/3 → C), channel attention."""

    def __init__(self, dim: int, compress_ratio: int = 3, squeeze_factor: int = 30) -> None:
        """Build ``cab`` (a Sequential)."""
        super().__init__()
        mid = max(1, dim // compress_ratio)
        self.cab = nn.Sequential(
            nn.Conv2d(dim, mid, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(mid, dim, 3, 1, 1),
            ChannelAttention(dim, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, C, H, W)``."""
        out: Tensor = self.cab(x)
        return out


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``(B, H, W, C)`` → ``(B·nW, ws, ws, C)`` non-overlapping windows (row-major)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B·nW, ws, ws, C)`` → ``(B, H, W, C)``."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.reshape(b, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, c)


def relative_position_index(ws: int) -> Tensor:
    """``(ws², ws²)`` indices into a ``((2ws − 1)², heads)`` table for (Δy, Δx) within a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    flat = coords.flatten(1)  # (2, N)
    rel = flat[:, :, None] - flat[:, None, :] + (ws - 1)  # (2, N, N), in [0, 2ws − 2]
    return rel[0] * (2 * ws - 1) + rel[1]


def overlap_position_index(ws: int, ows: int) -> Tensor:
    """``(ws², ows²)`` indices into a ``((ws + ows − 1)², heads)`` table for OCAB.

    Key pixel ``(a, b)`` of the ``ows`` window sits at ``(a − pad, b − pad)`` relative to the
    origin of the ``ws`` query window (``pad = (ows − ws) / 2``); the offset to query pixel
    ``(i, j)`` lies in ``[−(pad + ws − 1), ows − 1 − pad]``, i.e. ``ws + ows − 1`` values per axis.
    """
    pad = (ows - ws) // 2
    q = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    k = torch.stack(torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")).flatten(1)
    rel = (k[:, None, :] - pad) - q[:, :, None] + (pad + ws - 1)  # (2, Nq, Nk) in [0, ws+ows-2]
    return rel[0] * (ws + ows - 1) + rel[1]


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> Tensor:
    """The Swin region mask ``(nW, ws², ws²)``: 0 within a region, −100 across regions."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    windows = window_partition(img, ws).view(-1, ws * ws)
    diff = windows[:, None, :] - windows[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention in ``ws × ws`` windows with a learned relative position bias."""

    def __init__(
        self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True
    ) -> None:
        """Build ``relative_position_bias_table``, ``qkv`` and ``proj``."""
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` (B·nW, N, C); ``mask`` (nW, N, N) or None → (B·nW, N, C)."""
        bw, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B·nW, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        index: Tensor = self.relative_position_index  # type: ignore[assignment]
        bias = self.relative_position_bias_table[index.reshape(-1)].view(n, n, heads)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, heads, n, n)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        out = self.proj(out)
        return out


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + 0.01·CAB, then an MLP; pre-norm."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        *,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.0,
        compress_ratio: int = 3,
        squeeze_factor: int = 30,
        conv_scale: float = 0.01,
    ) -> None:
        """Build ``norm1``, ``attn``, ``conv_block``, ``norm2``, ``mlp``."""
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> Tensor:
        """``x`` (B, H·W, C) → same; ``mask`` is the shifted-window mask (used when shifted)."""
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        n = self.norm1(x).view(b, h, w, c)
        conv_x = self.conv_block(n.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        shifted = torch.roll(n, shifts=(-s, -s), dims=(1, 2)) if s else n
        windows = window_partition(shifted, ws).view(-1, ws * ws, c)
        attn = self.attn(windows, mask if s else None).view(-1, ws, ws, c)
        shifted = window_reverse(attn, ws, h, w)
        attn_x = torch.roll(shifted, shifts=(s, s), dims=(1, 2)) if s else shifted
        x = x + self.drop_path(attn_x.reshape(b, h * w, c)) + conv_x * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))


class OCAB(nn.Module):
    """Overlapping cross-attention block: ws×ws queries attend to overlapping ows×ows keys/values."""

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        *,
        overlap_ratio: float = 0.5,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
    ) -> None:
        """Build ``norm1``, ``qkv``, ``relative_position_bias_table``, ``proj``, ``norm2``, ``mlp``."""
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        if (self.overlap_win_size - window_size) % 2:
            raise ValueError("window_size * overlap_ratio must be even")
        ows = self.overlap_win_size
        self.scale = (dim // num_heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.unfold = nn.Unfold(
            kernel_size=(ows, ows), stride=window_size, padding=(ows - window_size) // 2
        )
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + ows - 1) ** 2, num_heads)
        )
        self.register_buffer(
            "relative_position_index", overlap_position_index(window_size, ows), persistent=False
        )
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """``x`` (B, H·W, C) → same."""
        h, w = size
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        d = c // heads
        shortcut = x
        qkv = self.qkv(self.norm1(x)).view(b, h, w, 3, c)
        q = qkv[..., 0, :]  # (B, H, W, C)
        kv = qkv[..., 1:, :].reshape(b, h, w, 2 * c).permute(0, 3, 1, 2)  # (B, 2C, H, W)
        q_win = window_partition(q, ws).view(-1, ws * ws, heads, d).transpose(1, 2)
        kv_win = self.unfold(kv)  # (B, 2C·ows², nW), zero-padded at the borders
        nw = kv_win.shape[-1]
        kv_win = kv_win.view(b, 2, c, ows * ows, nw).permute(1, 0, 4, 3, 2)  # (2, B, nW, ows², C)
        kv_win = kv_win.reshape(2, b * nw, ows * ows, heads, d).transpose(2, 3)
        k, v = kv_win[0], kv_win[1]  # (B·nW, heads, ows², d)
        attn = (q_win * self.scale) @ k.transpose(-2, -1)  # (B·nW, heads, ws², ows²)
        index: Tensor = self.relative_position_index  # type: ignore[assignment]
        bias = self.relative_position_bias_table[index.reshape(-1)].view(ws * ws, ows * ows, heads)
        attn = (attn + bias.permute(2, 0, 1).unsqueeze(0)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(-1, ws, ws, c)
        out = window_reverse(out, ws, h, w).reshape(b, h * w, c)
        x = self.proj(out) + shortcut
        return x + self.mlp(self.norm2(x))


class AttenBlocks(nn.Module):
    """The body of one RHAG: ``blocks`` (HABs, shift 0/ws/2 alternating) then ``overlap_attn``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        *,
        mlp_ratio: float,
        overlap_ratio: float,
        drop_path: list[float],
        squeeze_factor: int = 30,
    ) -> None:
        """Build ``blocks`` and ``overlap_attn``."""
        super().__init__()
        self.blocks = nn.ModuleList(
            HAB(
                dim,
                num_heads,
                window_size,
                0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                drop_path=drop_path[i],
                squeeze_factor=squeeze_factor,
            )
            for i in range(depth)
        )
        self.overlap_attn = OCAB(
            dim, window_size, num_heads, overlap_ratio=overlap_ratio, mlp_ratio=mlp_ratio
        )

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> Tensor:
        """``x`` (B, H·W, C) → same."""
        for blk in self.blocks:
            x = blk(x, size, mask)
        out: Tensor = self.overlap_attn(x, size)
        return out


class RHAG(nn.Module):
    """Residual hybrid attention group: AttenBlocks, then a conv_3, inside a residual connection."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        *,
        mlp_ratio: float,
        overlap_ratio: float,
        drop_path: list[float],
        squeeze_factor: int = 30,
    ) -> None:
        """Build ``residual_group`` and ``conv``."""
        super().__init__()
        self.residual_group = AttenBlocks(
            dim,
            depth,
            num_heads,
            window_size,
            mlp_ratio=mlp_ratio,
            overlap_ratio=overlap_ratio,
            drop_path=drop_path,
            squeeze_factor=squeeze_factor,
        )
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> Tensor:
        """``x`` (B, H·W, C) → same."""
        h, w = size
        b, _, c = x.shape
        y = self.residual_group(x, size, mask)
        y = self.conv(y.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return y + x


class PatchEmbed(nn.Module):
    """Flatten ``(B, C, H, W)`` to tokens ``(B, H·W, C)`` and apply ``norm``."""

    def __init__(self, dim: int) -> None:
        """Build ``norm``."""
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Tokens with LayerNorm."""
        out: Tensor = self.norm(x.flatten(2).transpose(1, 2))
        return out


class HAT(nn.Module):
    """HAT ×4 reconstruction from ``in_chans`` LR features to RGB (no padding of its own).

    Defaults: embed_dim 180, ``n_groups`` RHAGs of ``depth`` = 6 HABs, 6 heads, window 16,
    MLP ratio 2, overlap ratio 0.5, drop path up to 0.1, upsampler width 64. 5 RHAGs:
    17,525,649 params; 6 RHAGs: 20,871,327.
    """

    def __init__(
        self,
        *,
        in_chans: int = 64,
        embed_dim: int = 180,
        n_groups: int = 5,
        depth: int = 6,
        num_heads: int = 6,
        window_size: int = 16,
        mlp_ratio: float = 2.0,
        overlap_ratio: float = 0.5,
        drop_path_rate: float = 0.1,
        num_feat: int = 64,
        num_out_ch: int = 3,
        squeeze_factor: int = 30,
    ) -> None:
        """Build the head; see the class docstring."""
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        if window_size < 2 or window_size % 2:
            raise ValueError(f"window_size must be an even integer >= 2, got {window_size}")
        if depth < 1 or n_groups < 1:
            raise ValueError("depth and n_groups must be positive")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.window_size = window_size
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        total = n_groups * depth
        dpr = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        self.layers = nn.ModuleList(
            RHAG(
                embed_dim,
                depth,
                num_heads,
                window_size,
                mlp_ratio=mlp_ratio,
                overlap_ratio=overlap_ratio,
                drop_path=dpr[i * depth : (i + 1) * depth],
                squeeze_factor=squeeze_factor,
            )
            for i in range(n_groups)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(0.01, inplace=True)
        )
        self.upsample = nn.Sequential(
            nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1),
            nn.PixelShuffle(2),
            nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1),
            nn.PixelShuffle(2),
        )
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self._mask_cache: dict[tuple[int, int, str], Tensor] = {}

    def _mask(self, h: int, w: int, device: torch.device) -> Tensor:
        """The shifted-window mask for an ``h × w`` feature map (cached per size and device)."""
        ws = self.window_size
        key = (h, w, str(device))
        if key not in self._mask_cache:
            if len(self._mask_cache) > 8:
                self._mask_cache.clear()
            self._mask_cache[key] = shifted_window_mask(h, w, ws, ws // 2, device)
        return self._mask_cache[key]

    def forward(self, fea: Tensor) -> Tensor:
        """``(B, in_chans, H, W)`` with H, W multiples of ``window_size`` → ``(B, 3, 4H, 4W)``."""
        b, _, h, w = fea.shape
        ws = self.window_size
        if h % ws or w % ws:
            raise ValueError(f"HAT needs H, W multiples of {ws}, got {h}x{w} (pad the input)")
        x0 = self.conv_first(fea)
        mask = self._mask(h, w, fea.device).to(x0.dtype)
        t = self.patch_embed(x0)
        for layer in self.layers:
            t = layer(t, (h, w), mask)
        t = self.norm(t)
        c = t.shape[-1]
        x = self.conv_after_body(t.transpose(1, 2).reshape(b, c, h, w)) + x0
        out: Tensor = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return out
