"""Many inputs in one ``satvsr upscale``: one output per input in a folder, spread over the ranks.

``satvsr upscale A.mp4 B.mp4 "clips/*.mp4" @list.txt -o OUT/`` expands the inputs
(:func:`expand_inputs`), names one output per input in ``OUT/`` (the single-input default name:
``A_x4.mp4``, ``scene_x4/``, ``stack_x4.tif``) and runs them (:func:`upscale_many`). Under
``torchrun`` the inputs are spread over the ranks, largest first (each input runs whole on one
rank); a failed input is reported and the others go on. ``--resume`` skips the inputs whose
output is complete and continues the unfinished ones; torchrun restarts (``--max-restarts``)
do the same. Rank 0 gathers the results (:class:`BatchResult`) for the closing table.
"""

from __future__ import annotations

import dataclasses
import glob
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli.engine.config import ProgressEvent, UpscaleConfig
from satvsr_cli.errors import InputError, Interrupted, OutputError, SatvsrError

if TYPE_CHECKING:
    import torch

    from satvsr_cli.engine.distributed import DistEnv

ProgressCallback = Callable[[ProgressEvent], None]


def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def _read_list(spec: str) -> list[str]:
    path = Path(spec[1:])
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the input list ({exc.strerror or exc})") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def expand_inputs(specs: list[str] | tuple[str, ...]) -> tuple[list[str], bool]:
    """The inputs of ``specs`` and whether they are *many* (one output each, in a folder).

    ``@FILE`` reads one input per line (``#`` comments); a glob matching videos or folders
    stands for each match (a glob of images or GeoTIFFs stays one frame sequence, as before);
    anything else is one input. Several specs, a list file or an expanded glob make it many.
    """
    from satvsr_cli.io.base import IMAGE_SUFFIXES

    out: list[str] = []
    many = len(specs) > 1
    for spec in specs:
        if spec.startswith("@"):
            out.extend(_read_list(spec))
            many = True
        elif _is_glob(spec):
            matches = sorted(glob.glob(spec))
            if matches and not all(
                Path(m).is_file() and Path(m).suffix.lower() in IMAGE_SUFFIXES for m in matches
            ):
                out.extend(matches)
                many = True
            else:
                out.append(spec)
        else:
            out.append(spec)
    if not out:
        raise InputError("no inputs given (the list or glob is empty)")
    seen: set[str] = set()
    unique = [s for s in out if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]
    return unique, many


def output_name(spec: str) -> str:
    """The output name of one input: what ``upscale`` writes by default beside it."""
    from satvsr_cli.io import detect_input_type
    from satvsr_cli.io.video import VIDEO_OUTPUT_SUFFIXES

    kind = detect_input_type(spec)
    p = Path(spec.rstrip("/"))
    if kind == "video":
        suffix = p.suffix.lower() if p.suffix.lower() in VIDEO_OUTPUT_SUFFIXES else ".mp4"
        return p.stem + "_x4" + suffix
    if p.is_file():
        return p.stem + ("_x4.tif" if kind == "geotiff" else "_x4")
    return p.name + "_x4"


def input_size(spec: str) -> int:
    """Bytes of an input (a folder: its files); 0 when unreadable (the job reports why)."""
    p = Path(spec)
    try:
        if p.is_dir():
            return sum(q.stat().st_size for q in p.iterdir() if q.is_file())
        return p.stat().st_size
    except OSError:
        return 0


def assign(sizes: list[int], world: int) -> list[int]:
    """The rank of each input: largest first, each to the least loaded rank (ties: lowest)."""
    load = [0] * world
    ranks = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(world), key=lambda k: (load[k], k))
        ranks[i] = r
        load[r] += max(1, sizes[i])
    return ranks


@dataclass(frozen=True)
class InputResult:
    """What became of one input."""

    input: str
    output: str
    status: str  # done | skipped | failed
    rank: int = 0
    frames: int = 0
    resumed: int = 0
    wall_s: float = 0.0
    error: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class BatchResult:
    """Every input's :class:`InputResult`, in input order."""

    results: tuple[InputResult, ...]
    wall_s: float

    @property
    def failed(self) -> list[InputResult]:
        """The inputs that failed."""
        return [r for r in self.results if r.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"inputs": [asdict(r) for r in self.results], "wall_s": self.wall_s,
                "done": sum(r.status == "done" for r in self.results),
                "skipped": sum(r.status == "skipped" for r in self.results),
                "failed": len(self.failed)}


def _finished(out: Path) -> bool:
    """True when ``out`` is complete: it exists, no unfinished run of it is left, and its job
    record (kept beside a finished output) says complete."""
    from satvsr_cli.engine.distributed import parts_dir
    from satvsr_cli.engine.manifest import COMPLETE, manifest_path, read_manifest, state_of
    from satvsr_cli.io.base import partial_path

    record = manifest_path(out)
    if record.exists() and state_of(read_manifest(record)) != COMPLETE:
        return False
    return out.exists() and not (partial_path(out).exists() or parts_dir(out).exists())


def _run_one(
    config: UpscaleConfig, spec: str, out: Path, rank: int,
    model: torch.nn.Module | None, model_name: str | None, emit: ProgressCallback,
) -> InputResult:
    from satvsr_cli.engine.run import upscale
    from satvsr_cli.options import ExistingOutput

    t0 = time.perf_counter()
    if config.run.existing == ExistingOutput.resume and _finished(out):
        return InputResult(spec, str(out), "skipped", rank)
    try:
        summary = upscale(config.replace(input=spec, output=str(out)), model=model,
                          model_name=model_name, on_progress=emit, distributed=False)
    except Interrupted:
        raise
    except (SatvsrError, OSError, MemoryError) as exc:
        from satvsr_cli.errors import exit_code_for

        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return InputResult(spec, str(out), "failed", rank, wall_s=time.perf_counter() - t0,
                           error=msg, exit_code=exit_code_for(exc))
    return InputResult(spec, str(summary.output), "done", rank, frames=summary.frames_written,
                       resumed=summary.frames_resumed, wall_s=time.perf_counter() - t0)


def upscale_many(
    config: UpscaleConfig,
    inputs: list[str],
    *,
    env: DistEnv | None = None,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> BatchResult:
    """Upscale every input into the folder ``config.output.path`` (see the module docstring).

    ``config.input.path`` is ignored (each input replaces it). Every rank returns the whole
    :class:`BatchResult`; each rank reports the progress of its own inputs to ``on_progress``
    (the CLI shows rank 0's, and every rank's warnings).

    Raises:
        OutputError: no output folder, or two inputs with the same output name.
        Interrupted: Ctrl-C (the running inputs saved their progress).
    """
    from satvsr_cli.engine.distributed import (
        dist_env,
        process_group,
        rank_device,
        restart_policy,
        threads_per_rank,
    )

    t0 = time.perf_counter()
    env = env or dist_env()
    folder = Path(config.output.path) if config.output.path else None
    if folder is None:
        raise OutputError("several inputs need -o FOLDER (one output per input goes there)")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: several inputs need -o to be a folder")
    names: dict[str, str] = {}
    outs: list[Path] = []
    for spec in inputs:
        try:
            name = output_name(spec)
        except SatvsrError:
            name = Path(spec.rstrip("/")).name + "_x4"  # the job itself reports the problem
        if name in names:
            raise OutputError(f"{spec} and {names[name]} would both write {folder / name}")
        names[name] = spec
        outs.append(folder / name)
    emit = on_progress or (lambda _e: None)
    if not env.active:
        results = [_run_one(config, s, o, 0, model, model_name, emit)
                   for s, o in zip(inputs, outs, strict=True)]
        return BatchResult(tuple(results), time.perf_counter() - t0)

    import torch

    config = restart_policy(config, env)
    device = rank_device(config.compute.device, env)
    config = config.replace(device=device)
    threads_before = torch.get_num_threads()
    if not device.startswith(("cuda", "mps")):
        # the rank's share of the cores (or --threads); upscale() sets what the config says
        n = config.compute.threads or threads_per_rank(env)
        torch.set_num_threads(n)
        config = config.replace(threads=n)
    try:
        ranks = assign([input_size(s) for s in inputs], env.world_size)
        mine = [i for i, r in enumerate(ranks) if r == env.rank]
        with process_group(env) as group:
            folder.mkdir(parents=True, exist_ok=True)
            rank = env.rank

            def tagged(ev: ProgressEvent) -> None:
                emit(dataclasses.replace(ev, rank=rank))

            own = {i: _run_one(config, inputs[i], outs[i], rank, model, model_name, tagged)
                   for i in mine}
            gathered = group.gather(own)
    finally:
        torch.set_num_threads(threads_before)
    merged: dict[int, InputResult] = {}
    for part in gathered:
        merged.update(part)
    return BatchResult(tuple(merged[i] for i in range(len(inputs))), time.perf_counter() - t0)
