"""Reading video files through imageio-ffmpeg's bundled ffmpeg.

Reading: the header of ``ffmpeg -i`` gives size, pixel format, codec, audio and duration; the exact
rational frame rate comes from the ``showinfo`` filter (``frame_rate: 30000/1001``) because the
header prints it rounded to two decimals; the frame count is the number of video packets
(``-c copy`` to the null muxer: no decoding). Frames are decoded by
:func:`imageio_ffmpeg.read_frames` as ``rgb24`` (8-bit sources), ``rgb48le`` (deeper sources) or
``gray``/``gray16le`` (grey sources), one output frame per decoded frame (``-fps_mode passthrough``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from satvsr_cli.errors import InputError
from satvsr_cli.io.base import (
    Frame,
    FrameSource,
    SourceInfo,
    file_identity,
)

VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".gif", ".y4m", ".ogv", ".3gp",
)


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or ``$IMAGEIO_FFMPEG_EXE``)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(cmd: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
        timeout=timeout, check=False,
    )


def last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower() or "invalid" in ln.lower() or "not" in ln.lower():
            return ln
    return lines[-1] if lines else "ffmpeg failed"


_STREAM_RE = re.compile(r"Stream #\d+:(\d+)[^:]*: (Video|Audio|Subtitle): (.*)")


def bit_depth_of(pix_fmt: str) -> int:
    """Bits per component of an ffmpeg pixel format name (``yuv420p10le`` → 10, ``rgb48le`` → 16)."""
    base = pix_fmt.split("(")[0]
    m = re.search(r"(\d+)(le|be)$", base)
    if m:
        bits = int(m.group(1))
        if base.startswith(("rgb48", "bgr48")):
            return 16
        if base.startswith(("rgba64", "bgra64")):
            return 16
        return bits
    if base in ("p010le", "p010be"):
        return 10
    if base.startswith(("p016", "gray16", "ya16")):
        return 16
    return 8


def parse_header(text: str) -> dict[str, Any]:
    """Parse the ``ffmpeg -i`` banner: codec, pix_fmt, size, rotation, duration, audio codec."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        s = line.strip()
        m = _STREAM_RE.search(s)
        if m and m.group(2) == "Video" and "codec" not in out:
            desc = m.group(3)
            out["codec"] = desc.split()[0].strip(",")
            parts = re.split(r",\s*(?![^()]*\))", desc)
            out["pix_fmt"] = parts[1].strip() if len(parts) > 1 else ""
            sm = re.search(r"\b(\d{1,6})x(\d{1,6})\b", desc)
            if sm:
                out["size"] = (int(sm.group(1)), int(sm.group(2)))
            fm = re.search(r"([0-9.]+)k? fps", desc)
            if fm:
                out["fps_text"] = float(fm.group(1))
            if "attached pic" in desc:
                out.pop("codec", None)
        elif m and m.group(2) == "Audio" and "audio_codec" not in out:
            out["audio_codec"] = m.group(3).split()[0].strip(",")
        elif s.startswith("Duration:"):
            dm = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", s)
            if dm:
                h, mi, se = dm.groups()
                out["duration"] = int(h) * 3600 + int(mi) * 60 + float(se)
        elif "rotation of" in s and "rotation" not in out:
            rm = re.search(r"rotation of (-?[0-9.]+) degrees", s)
            if rm:
                out["rotation"] = round(float(rm.group(1))) % 360
    return out


def exact_frame_rate(path: Path) -> Fraction | None:
    """The exact rational frame rate of the first video stream (``showinfo`` ``frame_rate``)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
           "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"]
    res = run_ffmpeg(cmd, timeout=120)
    m = re.search(r"config in time_base: \d+/\d+, frame_rate: (\d+)/(\d+)", res.stderr)
    if m and int(m.group(2)) > 0 and int(m.group(1)) > 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    return None


def count_packets(path: Path) -> int | None:
    """Number of packets of the first video stream, without decoding (``-c copy -f null``)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
           "-c", "copy", "-f", "null", "-"]
    res = run_ffmpeg(cmd)
    if res.returncode != 0:
        return None
    found = re.findall(r"frame=\s*(\d+)", res.stderr)
    return int(found[-1]) if found else None


def fps_from_float(fps: float) -> Fraction:
    """Best rational for a rounded frame rate: NTSC-style ``k·1000/1001`` when it fits."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    k = round(fps * 1001 / 1000)
    if k > 0 and abs(k * 1000 / 1001 - fps) < 0.006 and abs(round(fps) - fps) > 0.006:
        return Fraction(k * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def probe_video(path: Path, *, autorotate: bool = True) -> SourceInfo:
    """Describe a video file; raises InputError for a missing, unreadable or frameless file.

    With ``autorotate`` (ffmpeg's default) a 90°/270° display rotation swaps width and height,
    because the frames are delivered upright.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    res = run_ffmpeg([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], timeout=120)
    head = parse_header(res.stderr)
    if "codec" not in head or "size" not in head:
        reason = last_error_line(res.stderr) if "Invalid data" in res.stderr or not head else (
            "no video stream"
        )
        raise InputError(f"{path}: not a readable video ({reason})")
    pix_fmt = str(head.get("pix_fmt", ""))
    depth = bit_depth_of(pix_fmt)
    grey = pix_fmt.startswith(("gray", "ya", "monow", "monob"))
    fps = exact_frame_rate(path)
    if fps is None and head.get("fps_text"):
        fps = fps_from_float(float(head["fps_text"]))
    n = count_packets(path)
    duration = head.get("duration")
    exact = n is not None
    if n is None and fps is not None and duration:
        n = round(float(duration) * fps)
    if n == 0:
        raise InputError(f"{path}: the video has no frames")
    vfr = False
    if n and fps and duration and n > 10:
        expected = float(duration) * float(fps)
        vfr = abs(expected - n) > max(2.0, 0.02 * n)
    w, h = head["size"]
    rotation = int(head.get("rotation", 0))
    if rotation in (90, 270) and autorotate:
        w, h = h, w  # ffmpeg delivers upright frames
    return SourceInfo(
        kind="video",
        spec=str(path),
        width=int(w),
        height=int(h),
        bands=1 if grey else 3,
        dtype="uint16" if depth > 8 else "uint8",
        n_frames=n,
        n_frames_exact=exact,
        fps=fps,
        duration=float(duration) if duration else None,
        codec=str(head["codec"]),
        pix_fmt=pix_fmt,
        bit_depth=depth,
        audio_codec=head.get("audio_codec"),
        rotation=rotation,
        vfr=vfr,
        files=(path,),
        identity={"path": str(path.resolve()), **file_identity([path])},
    )


class VideoSource(FrameSource):
    """Streams the frames of a video file; never holds more than the frame being decoded."""

    def __init__(
        self, path: Path, info: SourceInfo | None = None, *, autorotate: bool = True
    ) -> None:
        """Probe ``path`` (unless ``info`` is given)."""
        self.path = path
        self.info = info or probe_video(path, autorotate=autorotate)
        self.autorotate = autorotate

    def _pix_fmt(self) -> tuple[str, int, np.dtype]:
        grey = self.info.bands == 1
        if self.info.dtype == "uint16":
            return ("gray16le", 1, np.dtype("<u2")) if grey else ("rgb48le", 3, np.dtype("<u2"))
        return ("gray", 1, np.dtype("u1")) if grey else ("rgb24", 3, np.dtype("u1"))

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Decode frames in order, yielding those from ``start`` on (earlier ones are skipped)."""
        import logging

        import imageio_ffmpeg

        logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)  # size notes, not errors
        pix_fmt, channels, dt = self._pix_fmt()
        bpp = channels * dt.itemsize * 8
        gen = imageio_ffmpeg.read_frames(
            str(self.path),
            pix_fmt=pix_fmt,
            bits_per_pixel=bpp,
            input_params=[] if self.autorotate else ["-noautorotate"],
            output_params=["-map", "0:v:0", "-fps_mode", "passthrough"],
        )
        index = -1
        try:
            try:
                meta = next(gen)
            except (OSError, RuntimeError, StopIteration) as exc:
                raise InputError(f"{self.path}: not a readable video ({_first_line(exc)})") from None
            w, h = (int(v) for v in meta["size"])
            while True:
                try:
                    raw = next(gen)
                except StopIteration:
                    break
                except RuntimeError as exc:
                    raise InputError(
                        f"{self.path}: could not decode frame {index + 1} ({_first_line(exc)})"
                    ) from None
                index += 1
                if index < start:
                    continue
                arr = np.frombuffer(raw, dtype=dt).reshape(h, w, channels)
                yield Frame(index, arr.astype(dt.newbyteorder("="), copy=False), None)
        finally:
            gen.close()
        decoded = index + 1
        if decoded == 0:
            raise InputError(f"{self.path}: the video has no decodable frames")
        if self.info.n_frames_exact and self.info.n_frames and decoded < self.info.n_frames:
            raise InputError(
                f"{self.path}: truncated or corrupt video: only {decoded} of "
                f"{self.info.n_frames} frames could be decoded"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("===")]
    for ln in reversed(lines):
        if "Invalid" in ln or "rror" in ln or "No such" in ln:
            return ln.strip()
    return lines[0].strip() if lines else type(exc).__name__
