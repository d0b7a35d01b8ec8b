"""The upscale job: reader → ring buffer of 5 frames → :class:`WindowUpscaler` → writer.

:func:`upscale` is the library entry point behind ``satvsr upscale``. It first plans the job
(:func:`~satvsr_cli.engine.plan.plan_job`: input readable, frame range, bands, value range,
output path and the refuse/overwrite/resume rules, model and weights, tiles; the same plan that
``satvsr probe`` reports), then opens the writer (:func:`satvsr_cli.io.open_sink`) and streams
(:class:`~satvsr_cli.engine.job.Job`): at most the frames of one temporal window (plus the one
being decoded) are held, so memory does not grow with the video length. Every input frame in
the range gives exactly one output frame.

Outputs are written under temporary names (``OUT.partial``) and renamed when complete. The job
manifest ``OUT.satvsr.json`` records the input identity, every setting that affects the output,
the weights sha256, the progress and the job state; it stays beside the finished output as the
record of the job. The ``resume`` policy continues an interrupted run (completed frame files are
verified and kept; video is encoded in segments, and a resumed run re-encodes only the
unfinished one, so the result is byte-identical), finishes an interrupted commit, or finds the
output already complete. ``OUT.satvsr.lock`` (:mod:`satvsr_cli.engine.lock`) keeps a second
process off the same output. Ctrl-C (or SIGTERM) saves progress and raises
:class:`~satvsr_cli.errors.Interrupted` (exit code 130). A failed write (disk full, file-size
limit) keeps the finished frames for ``--resume``; any other user-facing error
(:class:`~satvsr_cli.errors.SatvsrError`) removes everything this job wrote.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import torch

from satvsr_cli.engine.backend import Runner, compute_threads, engine_shapes, open_runner
from satvsr_cli.engine.config import ProgressEvent, UpscaleConfig, UpscaleSummary
from satvsr_cli.engine.infer import WindowUpscaler
from satvsr_cli.engine.job import Job, ProgressCallback, sigterm_as_interrupt
from satvsr_cli.engine.lock import OutputLock
from satvsr_cli.engine.manifest import COMMITTING, COMPLETE, write_manifest
from satvsr_cli.engine.memory import DEFAULT_OVERLAP, Resources, choose_resources, peak_rss
from satvsr_cli.engine.plan import (
    HALF_WINDOW,
    SCALE,
    WINDOW,
    JobPlan,
    check_config,
    output_path,
    plan_job,
    state_sha256,
    value_range_for,
)
from satvsr_cli.engine.precision import choose_precision, weights_precision
from satvsr_cli.errors import Interrupted, OutputError, SatvsrError
from satvsr_cli.fsutil import kill_point, tree_fingerprint
from satvsr_cli.io import SinkOptions, open_sink, open_source

__all__ = [
    "DEFAULT_OVERLAP",
    "HALF_WINDOW",
    "SCALE",
    "WINDOW",
    "JobPlan",
    "ProgressCallback",
    "Resources",
    "check_config",
    "choose_resources",
    "plan_job",
    "state_sha256",
    "upscale",
    "value_range_for",
]


def upscale(
    config: UpscaleConfig,
    *,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[JobPlan], None] | None = None,
    commit: bool = True,
    distributed: bool = True,
) -> UpscaleSummary:
    """Run one upscale job; see the module docstring.

    Args:
        config: every option.
        model: an already built network (library use and tests); ``None`` resolves
            ``config.model`` (shipped default weights when neither a name nor weights are set).
        model_name: registry name of ``model`` (for the memory estimate and the tags).
        on_progress: called with :class:`ProgressEvent` objects (start, frame, warning, done).
        on_plan: called with the :class:`~satvsr_cli.engine.plan.JobPlan` before any frame is
            computed (tests compare it with ``probe``'s).
        commit: ``False`` leaves the finished frames in ``OUT.partial`` with the job manifest
            (a rank's part of a distributed job; :mod:`satvsr_cli.engine.distributed` joins).
        distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) split the job over the ranks
            (:func:`~satvsr_cli.engine.distributed.upscale_distributed`).

    Returns:
        The :class:`UpscaleSummary`.

    Raises:
        SatvsrError: bad input, output, weights or options (nothing of this job is left behind);
            :class:`Interrupted` after Ctrl-C (progress saved for resume).
    """
    if distributed and commit:
        from satvsr_cli.engine.distributed import dist_env, upscale_distributed

        env = dist_env()
        if env.active:
            return upscale_distributed(config, env=env, model=model, model_name=model_name,
                                       on_progress=on_progress)
    t_start = time.perf_counter()
    emit = on_progress or (lambda _e: None)
    warnings_list: list[str] = []

    def warn(msg: str) -> None:
        warnings_list.append(msg)
        emit(ProgressEvent("warning", message=msg, elapsed_s=time.perf_counter() - t_start))

    check_config(config)
    source = open_source(
        config.input.path, config.input.type, bands_per_frame=config.input.bands_per_frame,
        autorotate=config.input.autorotate, window=config.input.window,
    )
    with source, OutputLock(output_path(config, source.info)):
        plan = plan_job(config, source=source, model=model, model_name=model_name, warn=warn)
        if on_plan is not None:
            on_plan(plan)
        assert plan.model is not None and plan.bands is not None and plan.resume is not None
        assert plan.value_range is not None
        threads = compute_threads(config.compute.threads, plan.device)  # issue 11
        if plan.resume.complete:
            return _already_complete(plan, warnings_list, t_start, emit)
        res = plan.resources
        up = WindowUpscaler(
            plan.model.network, device=plan.device, precision=plan.precision, tile=res.tile,
            overlap=res.overlap, blend=config.compute.blend, batch=res.batch,
            cache_budget=res.cache_budget, bands=plan.bands, value_range=plan.value_range,
            out_dtype=plan.info.dtype, on_warning=warn, size_multiple=plan.size_multiple,
        )
        tiles = up.set_frame_size(plan.info.height, plan.info.width)
        assert tiles == plan.tiles, "the engine must tile as planned"
        up.runner = _open_runner(plan, up, threads, warn)
        sink = open_sink(plan.kind, plan.output, plan.info, SinkOptions(
            start=plan.start, end=plan.end, video=plan.video or config.output.video,
            raster=config.output.raster, fps=plan.fps, tags=plan.tags(),
            band_descriptions=plan.band_descriptions(), resume_state=plan.resume.sink_state,
        ))
        mpath = plan.resume.manifest_path
        job = Job(
            info=plan.info, sink=sink, up=up, out=plan.output, kind=plan.kind, mpath=mpath,
            params=plan.params, start=plan.start, end=plan.end,
            temporal_padding=config.compute.temporal_padding, emit=emit, t_start=t_start,
            independent=config.input.independent,
        )
        try:
            with sigterm_as_interrupt():
                job.run(source)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            sink.discard_pending()
            job.save_progress(interrupted=True)
            raise Interrupted(
                f"interrupted after {job.completed} frame(s); run the same command with --resume "
                "to continue"
            ) from None
        except OutputError as exc:
            # a write failed (disk full, file-size limit, ...): keep the finished frames
            sink.discard_pending()
            kept = len(sink.done())
            if not kept:
                sink.abort()
                mpath.unlink(missing_ok=True)
                raise
            with contextlib.suppress(SatvsrError):
                job.save_progress(interrupted=True)
            raise type(exc)(
                f"{exc}; the {kept} finished frame(s) are kept: free space (or fix the cause) "
                "and rerun with --resume"
            ) from None
        except SatvsrError:
            sink.abort()
            mpath.unlink(missing_ok=True)
            raise
        except BaseException:
            sink.discard_pending()
            job.save_progress(interrupted=True)
            raise
        if not commit:
            sink.seal()
            job.save_progress()
            return _summary(plan, up, job, plan.output, warnings_list, t_start, emit)
        try:
            # The commit is recoverable: killed anywhere in it, a --resume finds the state
            # "committing" and either redoes it from OUT.partial or finds it done.
            sink.flush()
            job.save_progress(state=COMMITTING)
            kill_point("before-commit")
            final = sink.commit()
            kill_point("after-commit")
            job.save_progress(state=COMPLETE,
                              extra={"output_fingerprint": tree_fingerprint(final)})
        except SatvsrError as exc:
            # every frame is done: keep them so that --resume only has to finish the output
            raise type(exc)(f"{exc}; the finished frames are kept, rerun with --resume") from None
        warnings_list.extend(getattr(sink, "warnings", []))
    return _summary(plan, up, job, final, warnings_list, t_start, emit)


def _open_runner(
    plan: JobPlan, up: WindowUpscaler, threads: int | None, warn: Callable[[str], None]
) -> Runner:
    """The backend runner of the job (issue 11), converted/compiled for the planned tile shape
    before the first frame. When ``auto`` falls back to torch, the job records what ran."""
    assert plan.model is not None
    config = plan.config
    net = plan.model.network
    record = (plan.model.manifest.precision if plan.model.manifest is not None
              else weights_precision(net))
    # the plan's torch is final (asked for, what auto means here, or what a resumed run ran)
    requested = "torch" if plan.backend == "torch" else config.compute.backend
    runner = open_runner(
        requested, net, plan.device, shapes=engine_shapes(
            net, plan.tile, min(up.batch, plan.tiles.n_tiles), up.frames_per_call()),
        precision_for=lambda b: choose_precision(
            config.compute.precision, plan.device, b, record)[0],
        threads=threads, model_id=plan.weights_id, warn=warn)
    if runner.name != plan.backend or str(runner.precision) != str(up.precision):
        # auto fell back to torch, or OpenVINO refused bf16 (engine/kernelcheck.py)
        plan.params.update(backend=runner.name, precision=str(runner.precision))
        up.precision = runner.precision
    return runner


def _already_complete(
    plan: JobPlan, warnings_list: list[str], t_start: float, emit: ProgressCallback
) -> UpscaleSummary:
    """``--resume`` on a complete output of the same job: record it as complete, do nothing."""
    assert plan.resume is not None and plan.model is not None and plan.bands is not None
    record = dict(plan.resume.record or {})
    if record.get("state") != COMPLETE:  # killed after the commit's rename: finish its record
        record.pop("format", None)
        record.pop("satvsr_version", None)
        record.update(state=COMPLETE, output_fingerprint=tree_fingerprint(plan.output))
        write_manifest(plan.resume.manifest_path, record)
    n = int(record.get("frames_done") or 0)
    wall = time.perf_counter() - t_start
    summary = UpscaleSummary(
        output=plan.output, output_kind=plan.kind, frames_written=0, frames_resumed=n,
        frames_total=n, wall_s=wall, fps=0.0, peak_rss_bytes=peak_rss(), peak_device_bytes=None,
        device=str(plan.device), precision=plan.precision, model=plan.model.label,
        weights_sha256=plan.model.sha256, tile=plan.tile, tiles_per_frame=plan.tiles.n_tiles,
        batch=plan.resources.batch, oom_retries=0, nonfinite_retries=0,
        warnings=tuple(warnings_list), already_complete=True, backend=plan.backend,
        precision_reason=plan.precision_reason,
        weights_choice=plan.weights_choice or "",
    )
    emit(ProgressEvent("done", done=n, total=n, elapsed_s=wall, fps=0.0,
                       message=f"{plan.output} is already complete: nothing to do",
                       info=summary.to_json()))
    return summary


def _summary(
    plan: JobPlan,
    up: WindowUpscaler,
    job: Job,
    final: Any,
    warnings_list: list[str],
    t_start: float,
    emit: ProgressCallback,
) -> UpscaleSummary:
    wall = time.perf_counter() - t_start
    stats = up.stats
    device = plan.device
    peak_dev = None
    if device.type == "cuda":
        peak_dev = int(torch.cuda.max_memory_allocated(device))
    assert up.plan is not None and plan.model is not None and plan.bands is not None
    assert plan.value_range is not None
    summary = UpscaleSummary(
        output=final,
        output_kind=plan.kind,
        frames_written=job.computed,
        frames_resumed=job.skipped,
        frames_total=job.computed + job.skipped,
        wall_s=wall,
        fps=job.computed / job.compute_time if job.compute_time > 0 else 0.0,
        peak_rss_bytes=peak_rss(),
        peak_device_bytes=peak_dev,
        device=str(device),
        precision=str(up.precision),  # what ran (auto may fall back to torch)
        model=plan.model.label,
        weights_sha256=plan.model.sha256,
        tile=(up.plan.tile_height, up.plan.tile_width),
        tiles_per_frame=up.plan.n_tiles,
        batch=up.batch,
        oom_retries=stats.oom_retries,
        nonfinite_retries=stats.nonfinite_retries,
        warnings=tuple(warnings_list),
        stats={"windows": stats.windows, "tiles": stats.tiles, "extracted": stats.extracted,
               "cache_hits": stats.cache_hits, "nonfinite_left": stats.nonfinite_left,
               "bands": plan.bands.describe(), "value_range": plan.value_range.to_json()},
        backend=up.runner.describe(),
        threads=torch.get_num_threads() if device.type == "cpu" else None,
        precision_reason=plan.precision_reason,
        weights_choice=plan.weights_choice or "",
    )
    emit(ProgressEvent("done", done=summary.frames_total, total=summary.frames_total,
                       elapsed_s=wall, fps=summary.fps, info=summary.to_json()))
    return summary
