"""One upscale job over many processes: ``torchrun`` ranks split the output frames and rank 0 joins.

Under ``torchrun`` (``WORLD_SIZE`` > 1; ``satvsr upscale --nproc N`` starts the same elastic
launcher) :func:`upscale_distributed` runs one job as follows:

1. Rank 0 applies the refuse/overwrite/resume rules to the output, fixes the tile, overlap and
   batch once (so that every rank computes exactly as one process would) and splits the output
   frames ``[start, end)`` into contiguous ranges, one per rank. Range borders are multiples of
   the frames one network call takes (and, for video, of ``--segment-frames``), counted from
   ``start``, so every network call and every video segment is the one a single process makes.
   The decision is kept in ``OUT.parts/job.json``.
2. Every rank runs the ordinary single-process job on its range into a *part* output
   ``OUT.parts/part-AAAAAA-BBBBBB`` (same suffix as ``OUT``) without committing it. A rank reads
   the temporal neighbours it needs beyond its range, exactly as ``--start``/``--end`` do, so
   every output frame equals the single-process one. Each part has its own job manifest: an
   interrupted or killed rank continues from it (``--resume``, or automatically when torchrun
   restarts the workers with ``--max-restarts``).
3. The ranks wait for each other (a gloo collective); rank 0 moves the parts' finished files
   into ``OUT.partial`` and commits it with the writer of the output kind: frame folders and
   per-frame GeoTIFFs are renamed, a stacked GeoTIFF (COG included) is assembled from the
   per-frame files, a video is joined from the ranks' segments with the concat demuxer
   (``-c copy``, the audio muxed once). The result is the file a single process writes.

Progress: every rank publishes its frame count in the process group's key-value store; rank 0
emits one view of the whole job (all ranks' frames). On CPU the cores are split between the
local ranks (``torch.set_num_threads``); on CUDA each rank uses ``cuda:LOCAL_RANK``.

The ranks' file system must be shared (multi-node: the output on a network file system).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli.engine.config import ProgressEvent, UpscaleConfig, UpscaleSummary
from satvsr_cli.errors import InputError, Interrupted, OutputError, SatvsrError

if TYPE_CHECKING:
    import torch

    from satvsr_cli.io.base import SourceInfo

ProgressCallback = Callable[[ProgressEvent], None]

JOB_FORMAT = "satvsr-dist/1"
#: Collective timeout (seconds): ranks wait at most this long for each other.
TIMEOUT_ENV = "SATVSR_DIST_TIMEOUT"


# ------------------------------------------------------------------------------------------
# the launch environment
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistEnv:
    """The torchrun environment of this process (single process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    restart_count: int = 0

    @property
    def active(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def dist_env(environ: dict[str, str] | None = None) -> DistEnv:
    """Read ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE`` and
    ``TORCHELASTIC_RESTART_COUNT`` (torchrun sets them; all default to one process)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        return DistEnv(
            rank=int(env.get("RANK", "0")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            world_size=world,
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
            restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
        )
    except ValueError:
        raise InputError("RANK, LOCAL_RANK and WORLD_SIZE must be integers") from None


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def threads_per_rank(env: DistEnv, cores: int | None = None) -> int:
    """CPU threads of one rank: the cores split evenly between the local ranks (at least 1);
    ``SATVSR_THREADS`` overrides."""
    override = os.environ.get("SATVSR_THREADS")
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise InputError(f"SATVSR_THREADS must be a whole number, got {override!r}") from None
    cores = cpu_cores() if cores is None else cores
    return max(1, cores // max(1, env.local_world_size))


def rank_device(name: str, env: DistEnv) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` (modulo the visible GPUs) when the job
    runs on CUDA (``auto`` with a GPU, ``cuda``); an explicit ``cuda:N`` or ``cpu`` is kept."""
    import torch

    n = (name or "auto").strip().lower()
    if n in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{env.local_rank % max(1, torch.cuda.device_count())}"
    if n == "auto":
        return "cpu"
    return n


# ------------------------------------------------------------------------------------------
# frame ranges
# ------------------------------------------------------------------------------------------


def split_frames(start: int, end: int, world: int, align: int = 1) -> list[tuple[int, int]]:
    """Contiguous ranges ``[a, b)`` covering ``[start, end)``, one per rank, in rank order.

    Borders are ``start + k * align``; ranks get (almost) the same number of ``align``-chunks
    (the first ranks one more); the last ranks get an empty range (``a == b``) when there are
    fewer chunks than ranks.
    """
    if end <= start:
        return [(start, start)] * world
    align = max(1, align)
    chunks = -(-(end - start) // align)
    out = []
    for r in range(world):
        c0, c1 = -(-chunks * r // world), -(-chunks * (r + 1) // world)
        a = min(end, start + c0 * align)
        b = min(end, start + c1 * align)
        out.append((a, b))
    return out


def parts_dir(out: Path) -> Path:
    """``OUT.parts`` beside the output: the ranks' part outputs and the job file."""
    return out.with_name(out.name + ".parts")


def part_path(out: Path, kind: str, a: int, b: int) -> Path:
    """The part output of range ``[a, b)`` (a video or ``.tif`` keeps the suffix)."""
    suffix = out.suffix if kind in ("video", "geotiff-stack") else ""
    return parts_dir(out) / f"part-{a:06d}-{b:06d}{suffix}"


# ------------------------------------------------------------------------------------------
# the process group
# ------------------------------------------------------------------------------------------


class EchoedError(SatvsrError):
    """An error every rank knows of (after a collective). Rank 0 reports it and exits with its
    code; the CLI of the other ranks leaves quietly with 0, so that the launcher does not stop
    rank 0 before it has said why."""

    echoed = True

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Group:
    """The gloo process group of the ranks, with the few collectives the job needs."""

    def __init__(self, env: DistEnv) -> None:
        self.env = env
        self.store: Any = None

    def barrier(self) -> None:
        """Wait for every rank."""
        import torch.distributed as dist

        dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.env.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # ----- the key-value store (progress; never blocks)
    def key(self, name: str) -> str:
        return f"satvsr/{self.env.restart_count}/{name}"

    def publish(self, name: str, value: Any) -> None:
        """Set ``name`` in the store (ignored when there is no store)."""
        if self.store is None:
            return
        try:
            self.store.set(self.key(name), json.dumps(value))
        except Exception:  # noqa: BLE001 (progress is best effort)
            self.store = None

    def peek(self, name: str) -> Any:
        """The value of ``name`` in the store, or ``None`` when it is not set (yet)."""
        if self.store is None:
            return None
        try:
            k = self.key(name)
            if not self.store.check([k]):
                return None
            return json.loads(self.store.get(k))
        except Exception:  # noqa: BLE001
            return None


def _attempt_store(env: DistEnv, timeout: _dt.timedelta) -> Any:
    """The launcher's store with a prefix of this restart attempt, or ``None`` (env://).

    torchrun's agent keeps its store across the restarts of ``--max-restarts``; without a
    prefix per attempt the restarted ranks would find the dead ranks' gloo addresses in it.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        return None
    import torch.distributed as dist

    base = dist.TCPStore(addr, int(port), env.world_size, is_master=False, timeout=timeout)
    return dist.PrefixStore(f"/satvsr/attempt_{env.restart_count}", base)


@contextmanager
def process_group(env: DistEnv) -> Iterator[Group]:
    """Join the torchrun process group (gloo: it only carries small objects) for the job."""
    import torch.distributed as dist

    group = Group(env)
    created = False
    if not dist.is_initialized():
        try:
            timeout = float(os.environ.get(TIMEOUT_ENV, str(7 * 24 * 3600)))
        except ValueError:
            raise InputError(f"{TIMEOUT_ENV} must be a number of seconds") from None
        try:
            td = _dt.timedelta(seconds=timeout)
            store = _attempt_store(env, td)
            if store is not None:
                dist.init_process_group(backend="gloo", store=store, rank=env.rank,
                                        world_size=env.world_size, timeout=td)
            else:
                dist.init_process_group(backend="gloo", timeout=td)
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"cannot join the torchrun process group ({str(exc).splitlines()[0]}); start "
                "with torchrun or `satvsr upscale --nproc N`"
            ) from None
        created = True
    try:
        from torch.distributed import distributed_c10d

        group.store = distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 (progress then shows rank 0 alone)
        group.store = None
    try:
        yield group
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def _error_payload(exc: BaseException) -> tuple[str, int]:
    from satvsr_cli.errors import exit_code_for

    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return msg, exit_code_for(exc)


def _on_rank0(group: Group, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 and hand its result (or its error) to every rank."""
    payload: Any = None
    error: BaseException | None = None
    if group.env.rank == 0:
        try:
            payload = ("ok", fn())
        except (SatvsrError, OSError, MemoryError) as exc:
            error = exc
            payload = ("error", _error_payload(exc))
    result = group.broadcast(payload)
    if error is not None:
        raise error
    if result[0] == "error":
        msg, code = result[1]
        raise EchoedError(msg, code)
    return result[1]


# ------------------------------------------------------------------------------------------
# rank 0: output rules and the split
# ------------------------------------------------------------------------------------------


def restart_policy(config: UpscaleConfig, env: DistEnv) -> UpscaleConfig:
    """Restarted workers (torchrun ``--max-restarts``) continue their parts: policy resume."""
    from satvsr_cli.options import ExistingOutput

    if env.restart_count > 0 and config.run.existing != ExistingOutput.resume:
        return config.replace(resume=True)
    return config


def _prepare(
    config: UpscaleConfig, env: DistEnv, model: torch.nn.Module | None, model_name: str | None,
) -> dict[str, Any]:
    """Rank 0: apply the output rules, fix the resources and split the frames (see module).

    Problems of the input, the bands or the network are left to the ranks' jobs, which raise
    them as one process would (rank 0 then removes the empty ``OUT.parts``)."""
    from satvsr_cli.engine.manifest import check_existing_output
    from satvsr_cli.engine.plan import check_output_location, plan_job
    from satvsr_cli.io.base import remove_path
    from satvsr_cli.options import ExistingOutput, OutputKind

    plan = plan_job(config, build=False, model=model, model_name=model_name)
    out, kind, info = plan.output, plan.kind, plan.info
    if plan.end is None:
        raise InputError(
            f"{info.spec}: the frame count is not known exactly, so the frames cannot be split "
            "between processes; run it in one process"
        )
    check_output_location(out, info)
    policy = config.run.existing
    parts = parts_dir(out)
    # the output itself and a single-process run of it
    _mpath, ppath, old = check_existing_output(config, out)
    if policy == ExistingOutput.resume and (old is not None or ppath.exists()):
        raise OutputError(
            f"{out}: an unfinished single-process run exists; resume it without torchrun or "
            "use --overwrite"
        )
    if parts.exists():
        if policy == ExistingOutput.refuse:
            raise OutputError(
                f"{out}: an unfinished run exists ({parts.name}); add --resume to continue it or "
                "--overwrite to start again"
            )
        if policy == ExistingOutput.overwrite:
            remove_path(parts)
    job_file = parts / "job.json"
    old_job: dict[str, Any] | None = None
    if job_file.is_file():
        try:
            old_job = json.loads(job_file.read_text())
        except (OSError, ValueError):
            old_job = None
        if not isinstance(old_job, dict) or old_job.get("format") != JOB_FORMAT:
            old_job = None
    res = plan.resources
    tiles = plan.tiles
    tile = [tiles.tile_height, tiles.tile_width]
    overlap, batch = tiles.overlap, res.batch
    if old_job is not None and old_job.get("start") == plan.start and old_job.get("end") == plan.end:
        tile, overlap, batch = list(old_job["tile"]), int(old_job["overlap"]), int(old_job["batch"])
    per_call = max(1, batch // max(1, tiles.n_tiles))
    align = per_call
    if kind == OutputKind.video:
        seg = config.output.video.segment_frames
        import math

        align = per_call * seg // math.gcd(per_call, seg)
    ranges = split_frames(plan.start, plan.end, env.world_size, align)
    if old_job is not None and old_job.get("ranges") != [list(r) for r in ranges]:
        # another split (world size changed): the parts are redone
        remove_path(parts)
    parts.mkdir(parents=True, exist_ok=True)
    from satvsr_cli.fsutil import atomic_write_text

    job = {"format": JOB_FORMAT, "output": str(out), "kind": str(kind), "start": plan.start,
           "end": plan.end, "world_size": env.world_size, "ranges": [list(r) for r in ranges],
           "tile": tile, "overlap": overlap, "batch": batch}
    atomic_write_text(job_file, json.dumps(job, indent=1) + "\n")
    # parts of earlier splits that are not ours any more
    keep = {part_path(out, str(kind), a, b).name for a, b in ranges}
    for p in parts.iterdir():
        stem = p.name.split(".")[0]
        if p.name != "job.json" and stem.startswith("part-") and not any(
            p.name.startswith(k) for k in keep
        ):
            remove_path(p)
    return {"output": str(out), "kind": str(kind), "start": plan.start, "end": plan.end,
            "ranges": ranges, "tile": tile, "overlap": overlap, "batch": batch,
            "tiles_per_frame": tiles.n_tiles, "precision": str(plan.precision)}


# ------------------------------------------------------------------------------------------
# rank 0: the join
# ------------------------------------------------------------------------------------------


def _join(
    config: UpscaleConfig, job: dict[str, Any], info: SourceInfo, tags: dict[str, str],
    band_descriptions: tuple[str | None, ...] | None, fps: Any,
) -> Path:
    """Move the parts' finished files into ``OUT.partial`` and commit it (see the module)."""
    from satvsr_cli.engine.manifest import manifest_path, read_manifest
    from satvsr_cli.io import SinkOptions, open_sink
    from satvsr_cli.io.base import partial_path, remove_path
    from satvsr_cli.options import OutputKind

    out, kind = Path(job["output"]), OutputKind(job["kind"])
    start, end = int(job["start"]), int(job["end"])
    ppath = partial_path(out)
    remove_path(ppath)
    ppath.mkdir(parents=True)
    state: dict[str, Any] = {}
    segments: list[dict[str, Any]] = []
    for a, b in job["ranges"]:
        if a == b:
            continue
        part = part_path(out, str(kind), a, b)
        work = partial_path(part)
        if kind == OutputKind.video:
            manifest = read_manifest(manifest_path(part)) or {}
            for seg in manifest.get("sink", {}).get("segments", []):
                name = f"seg_{len(segments):06d}{out.suffix.lower()}"
                os.replace(work / str(seg["file"]), ppath / name)
                segments.append({**seg, "file": name})
        else:
            for p in sorted(work.iterdir()):
                if not p.name.startswith("."):
                    os.replace(p, ppath / p.name)
    if kind == OutputKind.video:
        state = {"segments": segments}
    sink = open_sink(kind, out, info, SinkOptions(
        start=start, end=end, video=config.output.video, raster=config.output.raster, fps=fps,
        tags=tags, band_descriptions=band_descriptions, resume_state=state,
    ))
    missing = sorted(set(range(start, end)) - sink.done())
    if missing:
        raise OutputError(
            f"{out}: {len(missing)} frame(s) missing after the ranks finished (first: "
            f"{missing[0]}); run the same command with --resume"
        )
    final = sink.commit()
    shutil.rmtree(parts_dir(out), ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------


#: Test hook: ``RANK:N`` makes that rank SIGKILL itself after computing N frames, in the first
#: attempt only (the fault test of torchrun ``--max-restarts``).
TEST_KILL_ENV = "SATVSR_TEST_SIGKILL"


def _test_kill_hook(env: DistEnv, computed: int) -> None:
    delay = os.environ.get("SATVSR_TEST_DELAY")  # test hook: seconds of sleep per progress step
    if delay:
        time.sleep(float(delay))
    spec = os.environ.get(TEST_KILL_ENV)
    if not spec or env.restart_count:
        return
    rank, _, after = spec.partition(":")
    if str(env.rank) == rank and computed >= int(after or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class _Progress:
    """Every rank publishes its counts; rank 0 emits the job's one view (all ranks' frames)."""

    def __init__(self, group: Group, emit: ProgressCallback, total: int, t_start: float) -> None:
        self.group, self.emit, self.total, self.t_start = group, emit, total, t_start
        self.env = group.env
        self.done = 0
        self.computed = 0
        self.compute_fps: float | None = None
        self._last = -1
        self._last_publish = 0.0

    def rank_event(self, ev: ProgressEvent) -> None:
        """The part job's events on this rank."""
        if ev.event == "warning":
            if self.env.rank == 0:  # the ranks run the same plan: one copy of its warnings
                self.emit(dataclasses.replace(ev, rank=self.env.rank))
            return
        if ev.event in ("start", "frame"):
            if ev.event == "start":
                self.base = ev.done
            self.done = ev.done
            self.computed = ev.done - getattr(self, "base", 0)
            _test_kill_hook(self.env, self.computed)
            now = time.perf_counter()
            if ev.event == "start" or now - self._last_publish > 0.25 or ev.done == ev.total:
                self._last_publish = now
                self.group.publish(f"done/{self.env.rank}", [ev.done, self.computed])
            if self.env.rank == 0 and ev.event == "frame":
                self.refresh()

    def counts(self) -> list[list[int]]:
        out = []
        for r in range(self.env.world_size):
            if r == self.env.rank:
                out.append([self.done, self.computed])
                continue
            v = self.group.peek(f"done/{r}")
            out.append([int(v[0]), int(v[1])] if isinstance(v, list) else [0, 0])
        return out

    def start(self, resumed: int, info: dict[str, Any]) -> None:
        """Rank 0: the job's start event."""
        self.emit(ProgressEvent("start", done=resumed, total=self.total,
                                elapsed_s=time.perf_counter() - self.t_start, info=info, rank=0))
        self._resumed = resumed

    def refresh(self, force: bool = False) -> None:
        """Rank 0: one frame event with the sum over the ranks (when it changed)."""
        counts = self.counts()
        done = sum(c[0] for c in counts)
        if done == self._last and not force:
            return
        self._last = done
        computed = sum(c[1] for c in counts)
        elapsed = time.perf_counter() - self.t_start
        fps = computed / elapsed if elapsed > 0 and computed else None
        eta = (self.total - done) / fps if fps else None
        self.emit(ProgressEvent("frame", done=done, total=self.total, elapsed_s=elapsed, fps=fps,
                                eta_s=eta, rank=0, info={"ranks": [c[0] for c in counts]}))


def upscale_distributed(
    config: UpscaleConfig,
    *,
    env: DistEnv,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> UpscaleSummary:
    """One upscale job over the torchrun ranks (see the module docstring).

    Every rank returns the job's :class:`UpscaleSummary` (rank 0 emits the progress).

    Raises:
        SatvsrError: as :func:`~satvsr_cli.engine.run.upscale`; an error on another rank is an
            :class:`EchoedError` with that rank's exit code.
    """
    import torch

    from satvsr_cli.engine.run import upscale

    t_start = time.perf_counter()
    emit = on_progress or (lambda _e: None)
    threads_before = torch.get_num_threads()
    config = restart_policy(config, env)
    device = rank_device(config.compute.device, env)
    config = config.replace(device=device)
    if not device.startswith(("cuda", "mps")):
        # the rank's share of the cores (or --threads); upscale() sets what the config says
        n = config.compute.threads or threads_per_rank(env)
        torch.set_num_threads(n)
        config = config.replace(threads=n)
    try:
        with process_group(env) as group:
            job = _on_rank0(group, lambda: _prepare(config, env, model, model_name))
            a, b = job["ranges"][env.rank]
            progress = _Progress(group, emit, int(job["end"]) - int(job["start"]), t_start)
            out = Path(job["output"])
            part = part_path(out, job["kind"], a, b)
            part_cfg = config.replace(
                output=str(part), start=a, end=b,
                tile=tuple(job["tile"]), tile_overlap=int(job["overlap"]),
                batch=int(job["batch"]), audio=False,
                # a part with a manifest is continued, anything else of it is started afresh
                **({"resume": True} if _has_manifest(part) else {"overwrite": True}),
            )
            captured: dict[str, Any] = {}

            def on_plan(plan: Any) -> None:
                captured["plan"] = plan

            result: tuple[str, Any]
            summary: UpscaleSummary | None = None
            own_error: BaseException | None = None
            if env.rank == 0:
                progress.start(0, {"output": str(out), "output_kind": job["kind"],
                                   "tile": job["tile"], "batch": job["batch"], "device": device,
                                   "tiles_per_frame": job["tiles_per_frame"],
                                   "precision": job["precision"],
                                   "ranks": env.world_size, "ranges": job["ranges"]})
            try:
                if a < b:
                    summary = upscale(part_cfg, model=model, model_name=model_name,
                                      on_progress=progress.rank_event, on_plan=on_plan,
                                      commit=False, distributed=False)
                result = ("ok", _part_report(summary))
            except Interrupted:
                raise  # every rank got the signal: no collective any more
            except (SatvsrError, OSError, MemoryError) as exc:
                result = ("error", _error_payload(exc))
                own_error = exc
            group.publish(f"finished/{env.rank}", True)
            if env.rank == 0:
                while not all(group.peek(f"finished/{r}") for r in range(env.world_size)):
                    if group.store is None:
                        break
                    progress.refresh()
                    time.sleep(0.2)
                progress.refresh()
            results = group.gather(result)
            if env.rank == 0 and any(res[0] == "error" for res in results):
                _drop_empty_parts(Path(job["output"]))
            for r, res in enumerate(results):
                if res[0] == "error":
                    if r == env.rank == 0 and own_error is not None:
                        raise own_error
                    msg, code = res[1]
                    raise EchoedError(msg if r == 0 else f"rank {r}: {msg}", code)
            final_path = _on_rank0(group, lambda: _commit(config, job, captured, model,
                                                           model_name))
            group.barrier()
    finally:
        torch.set_num_threads(threads_before)
    reports = [res[1] for res in results]
    total = int(job["end"]) - int(job["start"])
    computed = sum(int(r["computed"]) for r in reports)
    compute_time = max((float(r["compute_s"]) for r in reports), default=0.0)
    wall = time.perf_counter() - t_start
    base = summary if summary is not None else next(
        (r["summary"] for r in reports if r["summary"] is not None), None)
    assert base is not None
    final = dataclasses.replace(
        base, output=Path(final_path), frames_written=computed, frames_resumed=total - computed,
        frames_total=total, wall_s=wall, fps=computed / compute_time if compute_time else 0.0,
        stats={**base.stats, "ranks": env.world_size, "ranges": job["ranges"],
               "frames_per_rank": [int(r["computed"]) for r in reports]},
    )
    if env.rank == 0:
        emit(ProgressEvent("done", done=total, total=total, elapsed_s=wall, fps=final.fps,
                           rank=0, info=final.to_json()))
    return final


def _drop_empty_parts(out: Path) -> None:
    """After a failed job: remove ``OUT.parts`` when no rank left progress to resume."""
    parts = parts_dir(out)
    if parts.is_dir() and not any(p.name.endswith(".satvsr.json") for p in parts.iterdir()):
        shutil.rmtree(parts, ignore_errors=True)


def _has_manifest(part: Path) -> bool:
    from satvsr_cli.engine.manifest import manifest_path

    return manifest_path(part).is_file()


def _part_report(summary: UpscaleSummary | None) -> dict[str, Any]:
    if summary is None:
        return {"computed": 0, "compute_s": 0.0, "summary": None}
    compute_s = summary.frames_written / summary.fps if summary.fps else 0.0
    return {"computed": summary.frames_written, "compute_s": compute_s, "summary": summary}


def _commit(
    config: UpscaleConfig, job: dict[str, Any], captured: dict[str, Any],
    model: torch.nn.Module | None, model_name: str | None,
) -> str:
    """Rank 0: the join, with the tags of the plan (its own part's, else a described one)."""
    from satvsr_cli.engine.plan import plan_job

    plan = captured.get("plan")
    if plan is None:  # rank 0 had no frames: describe the job for its tags
        a, b = next(r for r in job["ranges"] if r[0] < r[1])
        plan = plan_job(config.replace(
            output=str(part_path(Path(job["output"]), job["kind"], a, b)), start=a, end=b,
            tile=tuple(job["tile"]), tile_overlap=int(job["overlap"]), batch=int(job["batch"]),
            resume=True, audio=False), model=model, model_name=model_name)  # pragma: no cover
    return str(_join(config, job, plan.info, plan.tags(), plan.band_descriptions(), plan.fps))


# ------------------------------------------------------------------------------------------
# satvsr upscale --nproc N: torchrun's elastic launcher on this machine
# ------------------------------------------------------------------------------------------


def strip_option(argv: list[str], name: str, takes_value: bool = True) -> list[str]:
    """``argv`` without ``name`` (``--name V``, ``--name=V`` or the flag ``--name``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = takes_value
            continue
        if takes_value and arg.startswith(name + "="):
            continue
        out.append(arg)
    return out


def launch_local(nproc: int, argv: list[str], *, max_restarts: int = 0) -> int:
    """Run ``python -m satvsr_cli ARGV`` in ``nproc`` processes on this machine with torchrun's
    elastic launcher (``torchrun --standalone --nproc-per-node N``); returns the exit code (the
    first failed rank's, 0 when every rank succeeded)."""
    import sys

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    env = DistEnv(local_world_size=nproc, world_size=nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_rank(env)))
    args = get_args_parser().parse_args([
        "--standalone", "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts),
        "--monitor-interval", "0.5", "-m", "satvsr_cli",
    ])
    args.training_script_args = list(argv)  # as given (argparse would read --start as its own)
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values() if f.exitcode]
        # a rank killed by a signal reports -SIG: the shell's convention is 128 + SIG
        code = next((c for c in codes if c > 0), None)
        if code is None and codes:
            code = 128 + abs(codes[0])
        sys.stderr.flush()
        return code or 1
    return 0
