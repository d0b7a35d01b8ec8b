"""The streaming loop of one upscale job: reader → ring buffer of 5 frames → engine → writer.

:class:`Job` executes a :class:`~satvsr_cli.engine.plan.JobPlan` with an open source, an open
sink and a :class:`~satvsr_cli.engine.infer.WindowUpscaler`. At most the frames of one temporal
window (plus the one being decoded) are held, so memory does not grow with the video length.
It keeps the job manifest (settings, resolved tile/batch, writer state, progress) up to date so
that an interrupted run can be resumed bit-identically.
"""

from __future__ import annotations

import math
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import torch

from satvsr_cli.engine.config import ProgressEvent
from satvsr_cli.engine.infer import WindowUpscaler
from satvsr_cli.engine.manifest import RUNNING, write_manifest
from satvsr_cli.engine.plan import HALF_WINDOW, SCALE, WINDOW
from satvsr_cli.engine.windows import frame_indices
from satvsr_cli.errors import InputError
from satvsr_cli.fsutil import frame_delay
from satvsr_cli.io.base import Frame, FrameSink, FrameSource, RowWriter, SourceInfo

ProgressCallback = Callable[[ProgressEvent], None]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while a job runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _upsample_valid(valid: np.ndarray | None) -> np.ndarray | None:
    if valid is None:
        return None
    from satvsr_cli.io.geotiff import upsample_mask

    return upsample_mask(valid, SCALE)


class Job:
    """The streaming loop of one run, with its progress and manifest bookkeeping."""

    def __init__(
        self,
        *,
        info: SourceInfo,
        sink: FrameSink,
        up: WindowUpscaler,
        out: Path,
        kind: str,
        mpath: Path,
        params: dict[str, Any],
        start: int,
        end: int | None,
        temporal_padding: str,
        emit: ProgressCallback,
        t_start: float,
        independent: bool = False,
    ) -> None:
        self.info, self.sink, self.up = info, sink, up
        self.out, self.kind, self.mpath = out, kind, mpath
        self.params = params
        self.start, self.end = start, end
        self.padding = temporal_padding
        self.independent = independent  # every frame alone: its window is itself 5 times
        self.emit, self.t_start = emit, t_start
        self.computed = 0
        self.skipped = 0
        self.compute_time = 0.0
        self.completed = 0
        self._last_save = 0.0
        self._last_state: dict[str, Any] | None = None
        #: the frame being written on the writer thread (at most one: PNG/TIFF encoding of
        #: frame t overlaps the network on frame t+1; the sink is only touched after a drain)
        self._writing: Future[None] | None = None

    # ----- manifest
    def save_progress(self, interrupted: bool = False, state: str = RUNNING,
                      extra: dict[str, Any] | None = None) -> None:
        """Write the job manifest (state, settings, resolved tile/batch, sink state, progress)."""
        plan = self.up.plan
        tile = [plan.tile_height, plan.tile_width] if plan is not None else None
        write_manifest(self.mpath, {
            "output": str(self.out),
            "params": self.params,
            "resolved": {"tile": tile, "batch": self.up.batch, "overlap": self.up.overlap},
            "sink": self.sink.state(),
            "frames_done": len(self.sink.done()),
            "environment": {"torch": torch.__version__, "numpy": np.__version__,
                            "python": platform.python_version(),
                            "device": str(self.up.device)},
            "interrupted": interrupted,
            "state": state,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **(extra or {}),
        })
        self._last_save = time.perf_counter()
        self._last_state = self.sink.state()

    def _maybe_save(self) -> None:
        state = self.sink.state()
        if state != self._last_state or time.perf_counter() - self._last_save > 2.0:
            self.save_progress()

    # ----- writer thread
    def _drain(self) -> None:
        """Wait for the frame on the writer thread; its error (if any) is raised here."""
        pending, self._writing = self._writing, None
        if pending is not None:
            pending.result()

    # ----- loop
    def run(self, source: FrameSource) -> None:
        """Stream the frames through the engine into the sink (a sink with ``threaded_writes``
        encodes whole x4 frames on a writer thread while the network computes the next chunk)."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satvsr-writer")
        try:
            self._run(source, pool)
            self._drain()
        finally:
            with suppress(Exception):  # the run's own error is the one to report
                self._drain()  # a failed or interrupted run still finishes the frame in flight
            pool.shutdown(wait=True)

    def _run(self, source: FrameSource, pool: ThreadPoolExecutor) -> None:
        done = self.sink.done()
        start, end = self.start, self.end
        first_todo = start
        while first_todo in done and (end is None or first_todo < end):
            first_todo += 1
        per_call = self.up.frames_per_call()
        first_todo = start + (first_todo - start) // per_call * per_call
        self.skipped = len([i for i in done if i >= start and (end is None or i < end)])
        self.completed = self.skipped
        self.save_progress()
        total = (end - start) if end is not None else None
        self.emit(ProgressEvent(
            "start", done=self.skipped, total=total, total_exact=self.info.n_frames_exact,
            elapsed_s=time.perf_counter() - self.t_start,
            info={"output": str(self.out), "output_kind": self.kind,
                  "tile": [self.up.plan.tile_height, self.up.plan.tile_width] if self.up.plan else None,
                  "tiles_per_frame": self.up.plan.n_tiles if self.up.plan else None,
                  "batch": self.up.batch, "device": str(self.up.device),
                  "precision": self.up.precision, "resumed": self.skipped},
        ))
        if end is not None and first_todo >= end:
            return
        read_from = max(0, first_todo - HALF_WINDOW)
        frames_iter = source.frames(read_from)
        ring: dict[int, Frame] = {}
        last_read = read_from - 1
        eof = False

        def fill(upto: int) -> None:
            nonlocal last_read, eof
            while not eof and last_read < upto:
                try:
                    f = next(frames_iter)
                except StopIteration:
                    eof = True
                    break
                ring[f.index] = f
                last_read = f.index

        t = first_todo
        while end is None or t < end:
            # Frames go to the network in chunks aligned to ``start``, so that a resumed run
            # batches exactly as an uninterrupted one (bit-identical results).
            per_call = self.up.frames_per_call()
            c0 = start + (t - start) // per_call * per_call
            c1 = c0 + per_call if end is None else min(c0 + per_call, end)
            if all(u in done for u in range(c0, c1)):
                t = c1
            else:
                fill(c1 - 1 + HALF_WINDOW)
                items = [u for u in range(c0, c1) if u <= last_read]
                if not items:
                    if c0 <= start:
                        raise InputError(f"--start {start} is past the end of the input")
                    break  # the clip ended before the estimated count
                n_known = last_read + 1
                work = [(u, [u] * WINDOW if self.independent
                         else frame_indices(u, n_known, WINDOW, self.padding)) for u in items]
                t0 = time.perf_counter()
                writers: list[RowWriter | None] = [None] * len(items)
                if self.up.can_stream():
                    # rows go straight to the file: no full x4 frame in memory
                    writers = [
                        None if u in done else self.sink.open_rows(u, ring[u].valid is not None)
                        for u in items
                    ]
                self.up.on_tile = self._tile_reporter(items[-1], total)
                try:
                    outs = self.up.upscale_many(work, ring, writers)
                except BaseException:
                    for w in writers:
                        if w is not None:
                            w.abort()
                    raise
                if self._writing is not None:
                    self._drain()  # the previous chunk's last frame is on disk: the sink is ours
                    self._maybe_save()
                new = 0
                for u, hr, w in zip(items, outs, writers, strict=True):
                    if u in done:
                        continue
                    if w is not None:
                        self.sink.close_rows(u, w)
                    else:
                        assert hr is not None
                        self._drain()
                        args = (u, hr.transpose(1, 2, 0), _upsample_valid(ring[u].valid))
                        if self.sink.threaded_writes:
                            self._writing = pool.submit(self.sink.write, *args)
                        else:
                            self.sink.write(*args)
                    new += 1
                del outs
                self.compute_time += time.perf_counter() - t0
                self.computed += new
                self.completed += new
                if self._writing is None:  # nothing in flight (a sink without writer thread)
                    self._maybe_save()
                self._progress(items[-1], total, eof, last_read)
                frame_delay()
                t = items[-1] + 1
                if len(items) < c1 - c0:
                    break  # end of the clip inside the chunk
            for j in [j for j in ring if j < t - HALF_WINDOW]:
                del ring[j]
                self.up.forget(j)
        if end is None:
            self.end = t

    def _tile_reporter(self, t: int, total: int | None) -> Callable[[int, int], None]:
        def report(done: int, of: int) -> None:
            self.emit(ProgressEvent(
                "tile", done=self.completed, total=total, total_exact=self.info.n_frames_exact,
                elapsed_s=time.perf_counter() - self.t_start, frame=t, tiles_done=done,
                tiles_total=of,
            ))
        return report

    def _progress(self, t: int, total: int | None, eof: bool, last_read: int) -> None:
        if total is None and eof:
            total = last_read + 1 - self.start
        fps = self.computed / self.compute_time if self.compute_time > 0 else None
        remaining = (total - self.completed) if total is not None else None
        eta = remaining / fps if (fps and remaining is not None) else None
        self.emit(ProgressEvent(
            "frame", done=self.completed, total=total,
            total_exact=self.info.n_frames_exact or eof,
            elapsed_s=time.perf_counter() - self.t_start, fps=fps,
            eta_s=eta if eta is None or math.isfinite(eta) else None, frame=t,
        ))
