"""Video files through imageio-ffmpeg's bundled ffmpeg: streaming reader, segmented resumable writer.

Reading: the header of ``ffmpeg -i`` gives size, pixel format, codec, audio and duration; the exact
rational frame rate comes from the ``showinfo`` filter (``frame_rate: 30000/1001``) because the
header prints it rounded to two decimals; the frame count is the number of video packets
(``-c copy`` to the null muxer: no decoding). Frames are decoded by
:func:`imageio_ffmpeg.read_frames` as ``rgb24`` (8-bit sources), ``rgb48le`` (deeper sources) or
``gray``/``gray16le`` (grey sources), one output frame per decoded frame (``-fps_mode passthrough``).

Writing: frames are encoded in independent segments of ``segment_frames`` frames (each starts with
a keyframe) into ``OUT.partial/``; :meth:`VideoSink.commit` joins them losslessly with the concat
demuxer (``-c copy``), copies the audio of the source (re-encoding it to AAC/Opus only when the
container refuses the codec) and renames the result to ``OUT``. A resumed run re-encodes only the
unfinished segment, so its output is byte-identical to an uninterrupted run. The writer never
resizes (the frame size is passed as it is) and keeps the source frame rate as its exact rational.

The package: :mod:`.read` (probing and decoding) and :mod:`.write` (encoding).
"""

from __future__ import annotations

from satvsr_cli.io.video.read import (
    VIDEO_SUFFIXES,
    VideoSource,
    bit_depth_of,
    count_packets,
    exact_frame_rate,
    ffmpeg_exe,
    fps_from_float,
    parse_header,
    probe_video,
)
from satvsr_cli.io.video.write import (
    CRF_CODECS,
    PRESET_CODECS,
    VIDEO_OUTPUT_SUFFIXES,
    VideoSink,
    check_video_output,
    default_pix_fmt,
)

__all__ = [
    "CRF_CODECS",
    "PRESET_CODECS",
    "VIDEO_OUTPUT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoSink",
    "VideoSource",
    "bit_depth_of",
    "check_video_output",
    "count_packets",
    "default_pix_fmt",
    "exact_frame_rate",
    "ffmpeg_exe",
    "fps_from_float",
    "parse_header",
    "probe_video",
]
