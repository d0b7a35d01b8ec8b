"""Video reading and writing: exact fps, frame counts, bit depth, segments, audio, resume."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from satvsr_cli.errors import InputError
from satvsr_cli.io.video import (
    VideoSink,
    VideoSource,
    bit_depth_of,
    fps_from_float,
    parse_header,
    probe_video,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def write_video(path: Path, frames: list[np.ndarray], fps=Fraction(30000, 1001), extra=()):
    h, w = frames[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, macro_block_size=1, quality=None,
        output_params=["-crf", "0", "-preset", "ultrafast", *extra], ffmpeg_log_level="error",
    )
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    return path


def noise_frames(n, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def sine_wav(path: Path, seconds=1.0, codec="pcm_s16le"):
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:a", codec, str(path)], check=True)
    return path


def test_probe_and_read_exact_rational_fps_and_odd_count(tmp_path):
    src = write_video(tmp_path / "a.mp4", noise_frames(7))
    info = probe_video(src)
    assert info.fps == Fraction(30000, 1001)
    assert info.n_frames == 7 and info.n_frames_exact
    assert (info.width, info.height, info.bands, info.dtype) == (32, 24, 3, "uint8")
    assert info.audio_codec is None
    frames = list(VideoSource(src, info).frames())
    assert [f.index for f in frames] == list(range(7))
    assert frames[0].data.shape == (24, 32, 3) and frames[0].data.dtype == np.uint8
    later = list(VideoSource(src, info).frames(start=5))
    assert [f.index for f in later] == [5, 6]
    np.testing.assert_array_equal(later[0].data, frames[5].data)


@pytest.mark.parametrize(("value", "expected"), [
    (29.97, Fraction(30000, 1001)), (23.98, Fraction(24000, 1001)), (59.94, Fraction(60000, 1001)),
    (25.0, Fraction(25)), (12.5, Fraction(25, 2)), (1.0, Fraction(1)),
])
def test_fps_from_rounded_float(value, expected):
    assert fps_from_float(value) == expected


def test_parse_header_and_bit_depth():
    text = """Input #0, mov,mp4, from 'x.mp4':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 110 kb/s
  Stream #0:0[0x1](und): Video: hevc (Main 10) (hvc1 / 0x31637668), yuv420p10le(tv, bt2020nc/bt2020/smpte2084), 3840x2160 [SAR 1:1 DAR 16:9], 18 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)
      Side data:
        displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, mono, fltp, 70 kb/s (default)
"""
    h = parse_header(text)
    assert h["codec"] == "hevc" and h["size"] == (3840, 2160)
    assert h["pix_fmt"].startswith("yuv420p10le")
    assert h["rotation"] == 270 and h["audio_codec"] == "aac"
    assert abs(h["duration"] - 62.5) < 1e-9
    assert bit_depth_of(h["pix_fmt"]) == 10
    assert bit_depth_of("yuv420p") == 8 and bit_depth_of("rgb48le") == 16
    assert bit_depth_of("gray16le") == 16 and bit_depth_of("p010le") == 10


def test_sixteen_bit_video_is_read_as_uint16(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65536, (16, 20, 3), dtype=np.uint16) for _ in range(3)]
    path = tmp_path / "deep.mkv"
    raw = b"".join(f.astype("<u2").tobytes() for f in frames)
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb48le",
                    "-s", "20x16", "-r", "5", "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gbrp16le",
                    str(path)], input=raw, check=True)
    info = probe_video(path)
    assert info.dtype == "uint16" and info.bit_depth == 16 and info.fps == 5
    got = [f.data for f in VideoSource(path, info).frames()]
    assert len(got) == 3
    np.testing.assert_array_equal(got[1], frames[1])  # lossless: no 8-bit reduction


@pytest.mark.parametrize("content", [b"not a video at all" * 10, b""])
def test_unreadable_files_are_one_line_input_errors(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(InputError, match="not a readable video") as err:
        probe_video(bad)
    assert "\n" not in str(err.value)


def test_truncated_and_audio_only_files(tmp_path):
    src = write_video(tmp_path / "a.mp4", noise_frames(10, 64, 64))
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom at the end: lost
    with pytest.raises(InputError):
        probe_video(cut)
    wav = sine_wav(tmp_path / "only.wav")
    with pytest.raises(InputError, match=r"no video stream|not a readable video"):
        probe_video(wav)
    with pytest.raises(InputError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")


def sink(path, *, first=0, seg=2, audio=None, audio_codec=None, state=None, w=64, h=48, **kw):
    return VideoSink(path, width=w, height=h, channels=3, dtype="uint8",
                     fps=Fraction(30000, 1001), first_index=first, segment_frames=seg,
                     audio_source=audio, audio_codec=audio_codec, resume_state=state,
                     preset="ultrafast", **kw)


def test_segmented_writer_keeps_size_fps_and_count(tmp_path):
    out = tmp_path / "o.mp4"
    frames = noise_frames(5, 48, 64, seed=2)
    s = sink(out)
    for i, f in enumerate(frames):
        s.write(i, f, None)
    assert len(s.segments) == 2  # two full segments, the fifth frame is pending
    assert s.commit() == out
    assert not (tmp_path / "o.mp4.partial").exists()
    info = probe_video(out)
    assert (info.width, info.height) == (64, 48)  # never resized by the writer
    assert info.n_frames == 5 and info.fps == Fraction(30000, 1001)
    assert "bt709" in (info.pix_fmt or "")


def test_resumed_video_is_byte_identical(tmp_path):
    frames = noise_frames(7, 48, 64, seed=3)
    full = sink(tmp_path / "full.mp4")
    for i, f in enumerate(frames):
        full.write(i, f, None)
    full.commit()

    out = tmp_path / "resumed.mp4"
    first = sink(out)
    for i, f in enumerate(frames[:5]):
        first.write(i, f, None)
    first.discard_pending()  # "Ctrl-C" in the middle of the third segment
    state = first.state()
    assert len(state["segments"]) == 2
    second = sink(out, state=state)
    assert second.done() == {0, 1, 2, 3}
    for i in range(4, 7):
        second.write(i, frames[i], None)
    second.commit()
    assert out.read_bytes() == (tmp_path / "full.mp4").read_bytes()


def test_resume_state_with_a_damaged_segment_is_dropped(tmp_path):
    out = tmp_path / "o.mp4"
    s = sink(out)
    for i, f in enumerate(noise_frames(4, 48, 64)):
        s.write(i, f, None)
    state = s.state()
    seg = tmp_path / "o.mp4.partial" / state["segments"][1]["file"]
    seg.write_bytes(seg.read_bytes()[:-10])
    again = sink(out, state=state)
    assert again.done() == {0, 1}
    again.abort()
    assert not (tmp_path / "o.mp4.partial").exists()


def test_audio_is_copied_or_reencoded_when_the_container_refuses_it(tmp_path):
    wav = sine_wav(tmp_path / "a.wav", 0.5)
    src = tmp_path / "src.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=32x24:r=10",
                    "-i", str(wav), "-t", "0.5", "-c:v", "libx264", "-c:a", "aac", "-shortest",
                    str(src)], check=True)
    info = probe_video(src)
    assert info.audio_codec == "aac"
    frames = [f.data for f in VideoSource(src, info).frames()]
    up = [np.kron(f, np.ones((2, 2, 1), dtype=np.uint8)) for f in frames]
    out = tmp_path / "o.mp4"
    s = sink(out, audio=src, audio_codec="aac", w=64, h=48, seg=3)
    for i, f in enumerate(up):
        s.write(i, f, None)
    s.commit()
    assert probe_video(out).audio_codec == "aac"
    assert not s.warnings

    pcm_src = tmp_path / "pcm.mov"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(src), "-c:v", "copy",
                    "-c:a", "pcm_s16le", str(pcm_src)], check=True)
    out2 = tmp_path / "o2.mp4"
    s2 = sink(out2, audio=pcm_src, audio_codec="pcm_s16le", w=64, h=48, seg=3)
    for i, f in enumerate(up):
        s2.write(i, f, None)
    s2.commit()
    assert probe_video(out2).audio_codec == "aac"
    assert any("re-encoded" in w for w in s2.warnings)


def test_truncated_faststart_video_is_detected_while_reading(tmp_path):
    src = tmp_path / "fs.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=128x96:r=10",
                    "-t", "3", "-c:v", "libx264", "-movflags", "+faststart", str(src)], check=True)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])  # header intact, frame data missing
    info = probe_video(cut)
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(VideoSource(cut, info).frames())


def test_rotated_video_is_delivered_upright(tmp_path):
    src = write_video(tmp_path / "a.mp4", noise_frames(3, 24, 32))
    rot = tmp_path / "rot.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-display_rotation", "90", "-i", str(src),
                    "-c", "copy", str(rot)], check=True)
    info = probe_video(rot)
    assert info.rotation == 90 and (info.width, info.height) == (24, 32)
    assert next(iter(VideoSource(rot, info).frames())).data.shape == (32, 24, 3)
    raw = VideoSource(rot, autorotate=False)
    assert (raw.info.width, raw.info.height) == (32, 24)
    assert next(iter(raw.frames())).data.shape == (24, 32, 3)
