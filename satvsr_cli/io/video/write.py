"""Writing video files: a segmented, resumable writer.

Writing: frames are encoded in independent segments of ``segment_frames`` frames (each starts with
a keyframe) into ``OUT.partial/``; :meth:`VideoSink.commit` joins them losslessly with the concat
demuxer (``-c copy``), copies the audio of the source (re-encoding it to AAC/Opus only when the
container refuses the codec) and renames the result to ``OUT``. A resumed run re-encodes only the
unfinished segment, so its output is byte-identical to an uninterrupted run. The writer never
resizes (the frame size is passed as it is) and keeps the source frame rate as its exact rational.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from satvsr_cli.errors import OutputError
from satvsr_cli.fsutil import kill_point, space_problem, write_failure
from satvsr_cli.io.base import (
    FrameSink,
    atomic_replace,
    partial_path,
    remove_path,
)
from satvsr_cli.io.video.read import count_packets, ffmpeg_exe, last_error_line, run_ffmpeg

#: Output suffixes the writer supports.
VIDEO_OUTPUT_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm")


CRF_CODECS = ("libx264", "libx264rgb", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")


PRESET_CODECS = ("libx264", "libx264rgb", "libx265", "libsvtav1")


#: Audio codecs each container takes without re-encoding (others are re-encoded).
_AUDIO_OK: dict[str, tuple[str, ...] | None] = {
    ".mp4": ("aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"),
    ".m4v": ("aac", "mp3", "ac3", "eac3", "alac"),
    ".mov": None,  # takes almost anything, pcm included
    ".mkv": None,
    ".avi": ("mp3", "ac3", "pcm_s16le", "pcm_u8", "mp2"),
    ".webm": ("opus", "vorbis"),
}


def default_pix_fmt(codec: str, bit_depth: int, grey: bool) -> str:
    """The output pixel format when ``--pix-fmt`` is not given."""
    if codec in ("ffv1",):
        return ("gray16le" if grey else "gbrp16le") if bit_depth > 8 else ("gray" if grey else "gbrp")
    if codec in ("libx264rgb",):
        return "rgb24"
    if bit_depth > 8 and codec in ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"):
        return "yuv420p10le"
    return "yuv420p"


class _Encoder:
    """One ffmpeg process encoding raw frames from a pipe into one segment file."""

    def __init__(self, cmd: list[str], target: Path) -> None:
        self.target = target
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finish/kill)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
            start_new_session=True,  # Ctrl-C reaches Python only; we stop ffmpeg ourselves
        )
        self.frames = 0
        self._lock = threading.Lock()

    def send(self, data: bytes | memoryview) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            self.proc.wait()
            reason = space_problem(self.target) or self._stderr()
            raise OutputError(f"{self.target}: video encoder failed ({reason})") from None
        self.frames += 1

    def _stderr(self) -> str:
        self._log.seek(0)
        return last_error_line(self._log.read().decode(errors="replace"))

    def finish(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        rc = self.proc.wait()
        if rc != 0:
            msg = space_problem(self.target) or self._stderr()
            self._log.close()
            raise OutputError(f"{self.target}: video encoder failed ({msg})")
        self._log.close()

    def kill(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_video_output(path: Path, bands: int, dtype: str) -> None:
    """A video holds 1 or 3 bands of 8- or 16-bit pixels: OutputError otherwise (the one place
    this is checked; the planner calls it before any work, :class:`VideoSink` again)."""
    if bands not in (1, 3):
        raise OutputError(
            f"{path}: a video needs 1 or 3 bands per frame, the input has {bands}; "
            "write a folder or a .tif instead"
        )
    if dtype not in ("uint8", "uint16"):
        raise OutputError(
            f"{path}: a video needs 8- or 16-bit frames, the input is {dtype}; "
            "write a folder or a .tif instead"
        )


class VideoSink(FrameSink):
    """Segmented, resumable video writer (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        channels: int,
        dtype: str,
        fps: Fraction,
        first_index: int,
        codec: str = "libx264",
        crf: int | None = 18,
        preset: str | None = None,
        pix_fmt: str | None = None,
        encoder_opts: tuple[str, ...] = (),
        segment_frames: int = 100,
        audio_source: Path | None = None,
        audio_codec: str | None = None,
        audio_offset: Fraction = Fraction(0),
        resume_state: dict[str, Any] | None = None,
    ) -> None:
        """Prepare ``OUT.partial/`` (kept from an earlier run when ``resume_state`` is given)."""
        self.path = path
        self.suffix = path.suffix.lower()
        if self.suffix not in VIDEO_OUTPUT_SUFFIXES:
            raise OutputError(
                f"{path}: unsupported video container; use one of {', '.join(VIDEO_OUTPUT_SUFFIXES)}"
            )
        check_video_output(path, channels, dtype)
        self.width, self.height, self.channels, self.dtype = width, height, channels, dtype
        self.fps = fps
        self.first = first_index
        self.codec = codec
        self.crf = crf
        self.preset = preset
        depth = 16 if dtype == "uint16" else 8
        self.pix_fmt = pix_fmt or default_pix_fmt(codec, depth, channels == 1)
        self.encoder_opts = encoder_opts
        self.segment_frames = max(1, int(segment_frames))
        self.audio_source = audio_source if audio_codec else None
        self.audio_codec = audio_codec
        self.audio_offset = audio_offset
        self.workdir = partial_path(path)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.segments: list[dict[str, Any]] = []
        self._enc: _Encoder | None = None
        self._enc_first = 0
        self.warnings: list[str] = []
        if resume_state:
            self._load_state(resume_state)

    # ----- resume
    def _load_state(self, state: dict[str, Any]) -> None:
        for seg in state.get("segments", []):
            p = self.workdir / str(seg.get("file", ""))
            expected_first = self.first + len(self.segments) * self.segment_frames
            if int(seg.get("first", -1)) != expected_first or not p.is_file():
                break
            if _sha256(p) != seg.get("sha256"):
                break
            self.segments.append(dict(seg))
        keep = {s["file"] for s in self.segments} | {"concat.txt"}
        for p in self.workdir.iterdir():
            if p.name not in keep:
                remove_path(p)

    def state(self) -> dict[str, Any]:
        """Completed segments (file, first frame, count, sha256)."""
        return {"segments": list(self.segments)}

    def done(self) -> set[int]:
        """Frames inside completed segments."""
        out: set[int] = set()
        for seg in self.segments:
            out.update(range(int(seg["first"]), int(seg["first"]) + int(seg["count"])))
        return out

    # ----- encoding
    def _pix_fmt_in(self) -> str:
        if self.channels == 1:
            return "gray16le" if self.dtype == "uint16" else "gray"
        return "rgb48le" if self.dtype == "uint16" else "rgb24"

    def _segment_cmd(self, target: Path) -> list[str]:
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", self._pix_fmt_in(),
            "-s", f"{self.width}x{self.height}", "-r", str(self.fps), "-i", "-",
            "-an", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            "-c:v", self.codec, "-pix_fmt", self.pix_fmt,
        ]
        if self.pix_fmt.startswith(("yuv", "nv", "p0")):
            # RGB → YUV with the BT.709 matrix (ffmpeg would silently use BT.601) and say so.
            cmd += ["-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709",
                    "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
        if self.crf is not None and self.codec in CRF_CODECS:
            cmd += ["-crf", str(self.crf)]
        if self.preset and self.codec in PRESET_CODECS:
            cmd += ["-preset", self.preset]
        if self.codec == "libvpx-vp9" and self.crf is not None:
            cmd += ["-b:v", "0"]
        for opt in self.encoder_opts:
            key, _, value = opt.partition("=")
            cmd += [f"-{key.lstrip('-')}", value] if value else [f"-{key.lstrip('-')}"]
        cmd += ["-f", _muxer(self.suffix), str(target)]
        return cmd

    def _segment_name(self, k: int) -> str:
        return f"seg_{k:06d}{self.suffix}"

    def write(self, index: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Send frame ``index`` to the current segment's encoder (starting one when needed)."""
        if self._enc is None:
            k = len(self.segments)
            self._enc_first = self.first + k * self.segment_frames
            if index != self._enc_first:
                raise RuntimeError(f"video frames out of order: got {index}, expected {self._enc_first}")
            tmp = self.workdir / (f"tmp_{k:06d}{self.suffix}")
            self._enc = _Encoder(self._segment_cmd(tmp), tmp)
        expected = self._enc_first + self._enc.frames
        if index != expected:
            raise RuntimeError(f"video frames out of order: got {index}, expected {expected}")
        if data.shape != (self.height, self.width, self.channels):
            raise RuntimeError(f"frame shape {data.shape} does not match the video")
        arr = np.ascontiguousarray(data, dtype=np.dtype(self.dtype).newbyteorder("<"))
        self._enc.send(arr.tobytes() if not arr.flags.c_contiguous else arr.data.cast("B"))
        if self._enc.frames >= self.segment_frames:
            self._close_segment()

    def _close_segment(self) -> None:
        enc = self._enc
        if enc is None:
            return
        self._enc = None
        enc.finish()
        if count_packets(enc.target) != enc.frames:
            # ffmpeg may exit 0 with a truncated file (disk full, file-size limit)
            raise OutputError(write_failure(enc.target, "cannot write the video segment"))
        k = len(self.segments)
        final = self.workdir / self._segment_name(k)
        os.replace(enc.target, final)
        self.segments.append(
            {"file": final.name, "first": self._enc_first, "count": enc.frames,
             "sha256": _sha256(final)}
        )

    def seal(self) -> None:
        """Close the unfinished last segment (a rank's part; rank 0 joins the segments)."""
        self._close_segment()

    def flush(self) -> None:
        """Close the unfinished segment (before the commit, so the manifest lists it)."""
        self._close_segment()

    def discard_pending(self) -> None:
        """Kill the encoder of the unfinished segment and delete its file."""
        if self._enc is not None:
            enc, self._enc = self._enc, None
            enc.kill()
            enc.target.unlink(missing_ok=True)

    def commit(self) -> Path:
        """Close the last segment, join all segments (+ audio) into ``OUT``."""
        self._close_segment()
        if not self.segments:
            raise OutputError(f"{self.path}: no frames were written")
        listing = self.workdir / "concat.txt"
        listing.write_text("".join(f"file '{s['file']}'\n" for s in self.segments))
        n_frames = sum(int(s["count"]) for s in self.segments)
        tmp = self.workdir / f"joined{self.suffix}"
        base = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
                "-f", "concat", "-safe", "0", "-i", str(listing)]
        tail = ["-map_metadata", "-1", "-fflags", "+bitexact", "-f", _muxer(self.suffix)]
        if self.suffix in (".mp4", ".m4v", ".mov"):
            tail += ["-movflags", "+faststart"]
        video_only = [*base, "-map", "0:v:0", "-c", "copy", *tail, str(tmp)]
        cmd = video_only
        if self.audio_source is not None:
            duration = Fraction(n_frames) / self.fps
            audio_in = ["-ss", _sec(self.audio_offset), "-t", _sec(duration),
                        "-i", str(self.audio_source)]
            allowed = _AUDIO_OK.get(self.suffix)
            copy_ok = allowed is None or (self.audio_codec or "") in allowed
            a_codec = ["-c:a", "copy"] if copy_ok else _reencode_audio(self.suffix)
            if not copy_ok:
                self.warnings.append(
                    f"audio re-encoded ({self.audio_codec} is not allowed in {self.suffix})"
                )
            cmd = [*base, *audio_in, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                   *a_codec, *tail, str(tmp)]
        res = run_ffmpeg(cmd)
        if res.returncode != 0 and self.audio_source is not None and cmd is not video_only:
            # The container refused the copied audio: re-encode it.
            cmd = [*cmd[: cmd.index("-c:v")], "-c:v", "copy", *_reencode_audio(self.suffix),
                   *tail, str(tmp)]
            res = run_ffmpeg(cmd)
            if res.returncode == 0:
                self.warnings.append(f"audio re-encoded ({self.audio_codec} could not be copied)")
        if res.returncode != 0:
            reason = space_problem(tmp) or last_error_line(res.stderr)
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{self.path}: joining the video segments failed ({reason})")
        if count_packets(tmp) != n_frames:
            reason = write_failure(tmp, "cannot write the joined video")
            tmp.unlink(missing_ok=True)
            raise OutputError(reason)
        # The rename is the commit; OUT.partial/ goes after it, so a run killed in between is
        # finished by --resume (it joins the same segments again: the same bytes).
        atomic_replace(tmp, self.path)
        kill_point("after-rename")
        remove_path(self.workdir)
        return self.path

    def abort(self) -> None:
        """Stop the encoder and remove ``OUT.partial/``."""
        self.discard_pending()
        remove_path(self.workdir)
        remove_path(self.path.with_name(self.path.name + ".partial" + self.suffix))


def _sec(value: Fraction) -> str:
    return f"{float(value):.6f}"


def _muxer(suffix: str) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi",
            ".webm": "webm"}[suffix]


def _reencode_audio(suffix: str) -> list[str]:
    if suffix == ".webm":
        return ["-c:a", "libopus", "-b:a", "160k"]
    if suffix == ".avi":
        return ["-c:a", "libmp3lame", "-b:a", "192k"]
    return ["-c:a", "aac", "-b:a", "192k"]
