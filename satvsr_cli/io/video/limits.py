"""What a video encoder can hold: frame-size limits of the codecs' highest levels, the automatic
codec choice for huge x4 frames, and the output pixel format that follows the source's chroma.

The bundled ffmpeg's libx264 encodes frames beyond H.264's limits with a mere warning (``frame
MB size > level limit``) and libx265 accepts anything, but players and hardware decoders refuse
such files. So the limits here are the standards' highest levels:

* H.264 level 6.2 (``libx264``, ``libx264rgb``): at most 139264 macroblocks (16 x 16) per
  frame, each side at most sqrt(8 x 139264) = 1055 macroblocks (16880 px); e.g. 8192 x 4320.
* H.265 level 6.2 (``libx265``): at most 35651584 luma samples per frame, each side at most
  sqrt(8 x 35651584) = 16888 px; e.g. 8192 x 4320 and 7680 x 4320 x 1.07.
* AV1 level 6.3 (``libaom-av1``, ``libsvtav1``, ``librav1e``): 35651584 samples, 16384 x 8704.
* VP9 (``libvpx-vp9``): 65536 px per side. FFV1 and others: no limit checked.

Without ``--codec`` the writer uses libx264 and switches to libx265 when the frames are beyond
H.264 but within H.265; beyond both (or beyond an explicitly chosen codec) the job is refused
with a hint (``--window``, ``--codec``, a frame-folder output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from satvsr_cli.errors import OutputError

DEFAULT_CODEC = "libx264"
FALLBACK_CODEC = "libx265"


@dataclass(frozen=True)
class CodecLimits:
    """Frame-size limits of one codec (``None``: not limited)."""

    name: str
    max_macroblocks: int | None = None
    max_samples: int | None = None
    max_side: int | None = None
    max_width: int | None = None
    max_height: int | None = None

    def problem(self, width: int, height: int) -> str | None:
        """Why a ``width x height`` frame is beyond these limits, or ``None``."""
        if self.max_macroblocks is not None:
            mbs = math.ceil(width / 16) * math.ceil(height / 16)
            if mbs > self.max_macroblocks:
                return f"{mbs} macroblocks per frame > {self.max_macroblocks}"
        if self.max_samples is not None and width * height > self.max_samples:
            return f"{width * height} samples per frame > {self.max_samples}"
        if self.max_side is not None and max(width, height) > self.max_side:
            return f"a side of {max(width, height)} px > {self.max_side}"
        if self.max_width is not None and width > self.max_width:
            return f"width {width} > {self.max_width}"
        if self.max_height is not None and height > self.max_height:
            return f"height {height} > {self.max_height}"
        return None


_H264 = CodecLimits("H.264 level 6.2", max_macroblocks=139264, max_side=16880)
_H265 = CodecLimits("H.265 level 6.2", max_samples=35651584, max_side=16888)
_AV1 = CodecLimits("AV1 level 6.3", max_samples=35651584, max_width=16384, max_height=8704)
_VP9 = CodecLimits("VP9", max_side=65536)

LIMITS: dict[str, CodecLimits] = {
    "libx264": _H264, "libx264rgb": _H264, "libopenh264": _H264,
    "libx265": _H265, "libkvazaar": _H265,
    "libaom-av1": _AV1, "libsvtav1": _AV1, "librav1e": _AV1,
    "libvpx-vp9": _VP9,
}


def size_problem(codec: str, width: int, height: int) -> str | None:
    """Why ``codec`` cannot hold ``width x height`` frames (within its standard), or ``None``."""
    limits = LIMITS.get(codec)
    if limits is None:
        return None
    reason = limits.problem(width, height)
    return None if reason is None else f"{limits.name}: {reason}"


def choose_codec(requested: str | None, width: int, height: int, path: object) -> tuple[str, str | None]:
    """The encoder for ``width x height`` frames and a warning when it was switched.

    Raises:
        OutputError: the frames are beyond the chosen codec (or beyond H.264 and H.265).
    """
    hint = ("upscale a part with --window X,Y,W,H, or write a folder of frames (-o folder) "
            "or a .tif")
    if requested is not None:
        reason = size_problem(requested, width, height)
        if reason is None:
            return requested, None
        other = ("; --codec libx265 can hold them"
                 if requested != FALLBACK_CODEC and size_problem(FALLBACK_CODEC, width, height)
                 is None else "")
        raise OutputError(
            f"{path}: {requested} cannot hold {width}x{height} frames ({reason}){other}; {hint}"
        )
    reason = size_problem(DEFAULT_CODEC, width, height)
    if reason is None:
        return DEFAULT_CODEC, None
    if size_problem(FALLBACK_CODEC, width, height) is None:
        return FALLBACK_CODEC, (
            f"the x4 frames ({width}x{height}) are beyond H.264 ({reason}); writing H.265 "
            f"({FALLBACK_CODEC}) instead (choose with --codec)"
        )
    raise OutputError(
        f"{path}: {width}x{height} frames are beyond the limits of H.264 and H.265 "
        f"({size_problem(FALLBACK_CODEC, width, height)}); {hint}"
    )


def chroma_of(pix_fmt: str | None) -> str | None:
    """``444``, ``422`` or ``420`` for a source pixel format (``None`` when unknown; RGB and
    grey count as 4:4:4)."""
    if not pix_fmt:
        return None
    p = pix_fmt.lower()
    for c in ("444", "422", "420", "440", "411", "410"):
        if c in p:
            return {"440": "420", "411": "420", "410": "420"}.get(c, c)
    if p.startswith(("nv12", "nv21", "p010", "p016")):
        return "420"
    if p.startswith(("nv16", "p210", "p216")):
        return "422"
    if p.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "rgba", "bgra", "gray", "ya", "x2rgb")):
        return "444"
    return None


def output_pix_fmt(codec: str, bit_depth: int, grey: bool, source_pix_fmt: str | None,
                   default: str) -> str:
    """The output pixel format when ``--pix-fmt`` is not given: YUV encoders keep the source's
    chroma subsampling (4:4:4 stays 4:4:4, 4:2:0 stays 4:2:0); ``default`` (the writer's
    choice) when the source says nothing or the encoder is not a YUV one."""
    if not default.startswith("yuv"):
        return default
    chroma = chroma_of(source_pix_fmt)
    if chroma is None or grey or (source_pix_fmt or "").startswith(("gray", "ya")):
        return default  # grey frames lose nothing to subsampling
    deep = default.endswith("10le")
    return f"yuv{chroma}p" + ("10le" if deep else "")
