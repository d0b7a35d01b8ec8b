"""The job manifest ``<output>.satvsr.json``: what a run is, how far it got; it drives ``--resume``.

The manifest is written while the job runs (state ``running``), just before the output is moved
into place (``committing``) and when it is done (``complete``); it then stays beside the output
as the record of the job, so that ``--resume`` on a complete output of the same job has nothing
to do (and a different job is refused with the settings that differ).

Also the refuse/overwrite/resume decision about an existing output (:class:`ResumeDecision`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satvsr_cli import __version__
from satvsr_cli.errors import OutputError
from satvsr_cli.fsutil import atomic_write_text, tree_fingerprint
from satvsr_cli.io.base import SourceInfo, partial_path, remove_path
from satvsr_cli.options import ExistingOutput, OutputKind, Precision

if TYPE_CHECKING:
    import torch

    from satvsr_cli.engine.config import UpscaleConfig
    from satvsr_cli.engine.valuerange import ValueRange

FORMAT = "satvsr-job/1"


def manifest_path(output: Path) -> Path:
    """``OUT.satvsr.json`` beside the output (for a folder ``OUT/``: ``OUT.satvsr.json``)."""
    return output.with_name(output.name + ".satvsr.json")


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (temp file in the same folder, then ``os.replace``)."""
    payload = json.dumps({"format": FORMAT, "satvsr_version": __version__, **data}, indent=1,
                         sort_keys=True, default=str)
    try:
        atomic_write_text(path, payload + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the job manifest ({exc.strerror or exc})") from None


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``, or ``None`` when it is missing or not a satvsr job manifest."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two parameter dicts (JSON-normalised), sorted."""
    a = json.loads(json.dumps(old, sort_keys=True, default=str))
    b = json.loads(json.dumps(new, sort_keys=True, default=str))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


#: Job states kept in the manifest: frames being computed, the output being moved into place,
#: and finished (the manifest then stays beside the output as the record of the job).
RUNNING, COMMITTING, COMPLETE = "running", "committing", "complete"


def state_of(manifest: dict[str, Any] | None) -> str | None:
    """The job state of a manifest (``running`` for manifests written before states)."""
    if manifest is None:
        return None
    return str(manifest.get("state", RUNNING))


@dataclass(frozen=True)
class ResumeDecision:
    """What happens to an existing output or an unfinished run of it.

    ``sink_state`` and ``resolved`` are the earlier run's writer state and tile/batch/overlap
    when it is resumed; both ``None`` for a fresh start. ``complete`` is true when ``--resume``
    finds the output already complete for the same job: nothing is left to do.
    """

    policy: ExistingOutput
    manifest_path: Path
    partial_path: Path
    sink_state: dict[str, Any] | None = None
    resolved: dict[str, Any] | None = None
    complete: bool = False
    record: dict[str, Any] | None = None

    @property
    def resuming(self) -> bool:
        """True when an earlier run is continued."""
        return self.sink_state is not None


def check_existing_output(config: UpscaleConfig, out: Path) -> tuple[Path, Path, dict[str, Any] | None]:
    """Apply the refuse/overwrite rules; returns the manifest path, the partial path and the
    earlier run's manifest (kept only when it may be resumed or checked by ``--resume``)."""
    policy = config.run.existing
    mpath, ppath = manifest_path(out), partial_path(out)
    for stale in mpath.parent.glob(f".{mpath.name}.*.partial"):
        stale.unlink(missing_ok=True)  # a manifest write killed half-way (atomic: never read)
    old_manifest = read_manifest(mpath) if mpath.exists() else None
    if state_of(old_manifest) == COMPLETE and not out.exists():
        mpath.unlink(missing_ok=True)  # the record of an output that was removed since
        old_manifest = None
    if policy == ExistingOutput.overwrite:
        if ppath.exists() or mpath.exists():
            remove_path(ppath)
            mpath.unlink(missing_ok=True)
        return mpath, ppath, None
    if out.exists():
        if policy == ExistingOutput.refuse:
            if state_of(old_manifest) in (RUNNING, COMMITTING):
                raise OutputError(
                    f"{out} already exists and an unfinished run replacing it was interrupted; "
                    "add --resume to continue it or --overwrite to start again"
                )
            raise OutputError(f"{out} already exists; add --overwrite to replace it")
        if old_manifest is None:
            raise OutputError(
                f"{out} already exists and has no job record ({mpath.name}) to check it "
                "against; add --overwrite to replace it"
            )
        return mpath, ppath, old_manifest
    if policy != ExistingOutput.resume and (ppath.exists() or old_manifest is not None):
        raise OutputError(
            f"{out}: an unfinished run exists ({ppath.name}); add --resume to continue it "
            "or --overwrite to start again"
        )
    return mpath, ppath, old_manifest


def job_params(
    config: UpscaleConfig,
    info: SourceInfo,
    kind: OutputKind,
    start: int,
    end: int | None,
    device: torch.device,
    precision: Precision,
    vrange: ValueRange | None,
    label: str,
    weights_id: str,
    backend: str = "torch",
) -> dict[str, Any]:
    """Every setting that affects the output, as kept in the job manifest (resume checks)."""
    inp, comp, video, raster = (config.input, config.compute, config.output.video,
                                config.output.raster)
    assert vrange is not None
    return {
        "input": info.identity, "input_kind": info.kind, "output_kind": str(kind),
        "start": start, "end": end, "temporal_padding": str(comp.temporal_padding),
        "tile": comp.tile, "tile_overlap": comp.tile_overlap, "blend": str(comp.blend),
        "batch": comp.batch, "device": device.type, "precision": str(precision),
        "value_range": vrange.to_json(), "bands": inp.bands,
        "bands_per_frame": inp.bands_per_frame, "fps": str(video.fps),
        "codec": video.codec, "crf": video.crf, "preset": video.preset,
        "pix_fmt": video.pix_fmt, "encoder_opts": list(video.encoder_opts),
        "audio": video.audio, "segment_frames": video.segment_frames,
        "frame_format": None if raster.frame_format is None else str(raster.frame_format),
        "compress": str(raster.compress), "cog": raster.cog,
        "overviews": raster.overviews, "autorotate": inp.autorotate,
        "window": None if inp.window is None else list(inp.window),
        "independent": inp.independent or None,
        "model": label, "weights_sha256": weights_id, "backend": backend,
    }


def resume_decision(
    config: UpscaleConfig,
    out: Path,
    mpath: Path,
    ppath: Path,
    old_manifest: dict[str, Any] | None,
    params: dict[str, Any],
    warn: Callable[[str], None],
) -> ResumeDecision:
    """Continue the earlier run (its settings must match ``params``), report a complete output
    of the same job, or start afresh."""
    policy = config.run.existing
    if policy != ExistingOutput.resume:
        return ResumeDecision(policy, mpath, ppath)
    if old_manifest is None:
        if ppath.exists():
            remove_path(ppath)
        warn(f"--resume: no unfinished run of {out} found; starting from the beginning")
        return ResumeDecision(policy, mpath, ppath)
    state = state_of(old_manifest)
    diff = differences(old_manifest.get("params", {}), params)
    if diff:
        what = "the complete output" if state == COMPLETE else "the unfinished run"
        raise OutputError(
            f"--resume: {what} of {out} used different settings "
            f"({', '.join(diff[:6])}); repeat its options or use --overwrite"
        )
    committed = state == COMMITTING and out.exists() and not ppath.exists()
    if state == COMPLETE or committed:
        recorded = old_manifest.get("output_fingerprint")
        if state == COMPLETE and recorded is not None and recorded != tree_fingerprint(out):
            raise OutputError(
                f"--resume: {out} was changed since its job completed ({recorded.get('files')} "
                f"file(s), {recorded.get('bytes')} bytes recorded); use --overwrite to redo it"
            )
        return ResumeDecision(policy, mpath, ppath, complete=True, record=old_manifest)
    return ResumeDecision(policy, mpath, ppath, sink_state=dict(old_manifest.get("sink", {})),
                          resolved=dict(old_manifest.get("resolved", {})), record=old_manifest)
