"""Lossy coding round trips through the bundled ffmpeg and Pillow: what users' files do to frames.

Used by training (degradations) and evaluation (coded-input rows), so both code LR frames with
the same recipe. Everything runs in memory through pipes; ffmpeg is imageio-ffmpeg's bundled
binary (libx264, libx265), one thread, so a round trip is deterministic.

The evaluation recipe (``--lr-codec h264:23``) is the one a user's mp4 gets from
``ffmpeg -framerate 10 -i %03d.png -c:v libx264 -crf 23 -preset medium -pix_fmt yuv420p``:
:func:`code_frames` with the defaults and ``keyint=None`` (the encoder's own GOP).
"""

from __future__ import annotations

import io
import subprocess

import numpy as np
import numpy.typing as npt

from satvsr_cli.errors import InputError

U8 = npt.NDArray[np.uint8]

#: codec name → ffmpeg encoder
ENCODERS: dict[str, str] = {"h264": "libx264", "h265": "libx265"}
#: smallest frame side an encoder accepts (libx265 refuses frames below 16 px); smaller frames
#: are edge-padded for coding and cropped back
MIN_SIZE: dict[str, int] = {"h265": 16}


def parse_codec(text: str) -> tuple[str, int]:
    """``"h264:23"`` → ``("h264", 23)``; one-line error otherwise."""
    name, _, crf = text.partition(":")
    name = name.strip().lower()
    if name not in ENCODERS or not crf.strip().isdigit():
        raise InputError(f"--lr-codec {text!r}: use CODEC:CRF with CODEC h264 or h265, e.g. h264:23")
    value = int(crf)
    if not 0 <= value <= 51:
        raise InputError(f"--lr-codec {text!r}: CRF must be in 0..51")
    return name, value


def code_frames(
    frames: U8,
    codec: str = "h264",
    crf: int = 23,
    *,
    preset: str = "medium",
    fps: int = 10,
    keyint: int | None = None,
) -> U8:
    """Code ``(N, H, W, 3)`` uint8 RGB frames as one ``yuv420p`` video and decode them back.

    ``keyint`` forces a key frame every ``keyint`` frames with scene-cut detection off (clips
    coded back to back, each its own GOP); ``None`` keeps the encoder's defaults. Odd sizes
    (and sides below :data:`MIN_SIZE`) are edge-padded for the 4:2:0 chroma and cropped back.

    Raises:
        InputError: unknown codec, or ffmpeg failed (its last message in the error).
    """
    import imageio_ffmpeg

    if codec not in ENCODERS:
        raise InputError(f"unknown codec {codec!r}; use h264 or h265")
    n, h, w, c = frames.shape
    if c != 3:
        raise InputError(f"lossy coding needs RGB frames, got {c} channels")
    least = MIN_SIZE.get(codec, 2)
    ph, pw = max(h + h % 2, least), max(w + w % 2, least)
    if (ph, pw) != (h, w):
        frames = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    enc = [ff, "-v", "error", "-nostdin", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{pw}x{ph}", "-framerate", str(fps), "-i", "pipe:0",
           "-c:v", ENCODERS[codec], "-crf", str(int(crf)), "-preset", preset,
           "-pix_fmt", "yuv420p", "-threads", "1"]
    x265 = "log-level=none:pools=none:frame-threads=1"
    if keyint is not None:
        if codec == "h264":
            enc += ["-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0"]
        else:
            x265 += f":keyint={keyint}:min-keyint={keyint}:scenecut=0"
    if codec == "h265":
        enc += ["-x265-params", x265]
    enc += ["-f", "matroska", "pipe:1"]
    coded = subprocess.run(enc, input=np.ascontiguousarray(frames).tobytes(),
                           capture_output=True, check=False)
    if coded.returncode != 0:
        msg = coded.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"ffmpeg could not code {n} frames of {w}x{h} with {codec}: "
                         f"{msg[-1] if msg else coded.returncode}")
    dec = [ff, "-v", "error", "-nostdin", "-threads", "1", "-i", "pipe:0",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    out = subprocess.run(dec, input=coded.stdout, capture_output=True, check=False)
    raw = np.frombuffer(out.stdout, dtype=np.uint8)
    if out.returncode != 0 or raw.size != n * ph * pw * 3:
        raise InputError(f"ffmpeg could not decode the {codec} (crf {crf}) round trip")
    return raw.reshape(n, ph, pw, 3)[:, :h, :w].copy()


def jpeg_frames(frames: U8, quality: int) -> U8:
    """Each frame of ``(N, H, W, 3)`` stored and read back as a baseline 4:2:0 JPEG."""
    from PIL import Image

    out = np.empty_like(frames)
    for t, f in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out[t] = np.asarray(Image.open(buf).convert("RGB"))
    return out


__all__ = ["ENCODERS", "code_frames", "jpeg_frames", "parse_codec"]
