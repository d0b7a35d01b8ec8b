"""``satvsr probe``: describe an input and the planned job without running (or loading) a network.

The report is made from :func:`satvsr_cli.engine.plan.plan_job` with ``build=False``: the very
plan ``satvsr upscale`` executes, so the tile, precision and output kind shown are the ones a run
uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.memory import device_available, format_bytes
from satvsr_cli.engine.plan import SCALE, JobPlan, plan_job
from satvsr_cli.engine.valuerange import ValueRange
from satvsr_cli.errors import OutOfMemory
from satvsr_cli.io.base import SourceInfo


@dataclass(frozen=True)
class ProbeReport:
    """What ``satvsr probe`` prints: the input, the output it would make, and the plan."""

    info: SourceInfo
    model: str | None
    size_multiple: int
    device: str
    precision: str
    tile: tuple[int, int]
    grid: tuple[int, int]
    overlap: int
    batch: int
    value_range: ValueRange | None
    value_range_note: str | None
    bands: str | None
    output: Path
    output_kind: str
    output_size: tuple[int, int]
    output_frames: int | None
    output_bytes_per_frame: int
    memory: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    problems: tuple[tuple[int, str], ...] = ()
    video_codec: str | None = None
    video_pix_fmt: str | None = None
    #: the weights the run would load (label) and why, when chosen for the input (issue 9)
    weights: str | None = None
    weights_choice: str | None = None

    @property
    def runnable(self) -> bool:
        """True when ``satvsr upscale`` could run this plan (no :attr:`problems`)."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        info = self.info
        geo = info.geo
        return {
            "input": {
                "kind": info.kind, "path": info.spec, "frames": info.n_frames,
                "frames_exact": info.n_frames_exact,
                "fps": str(info.fps) if info.fps is not None else None,
                "fps_float": float(info.fps) if info.fps is not None else None,
                "vfr": info.vfr, "width": info.width, "height": info.height, "bands": info.bands,
                "dtype": info.dtype, "bit_depth": info.bit_depth, "codec": info.codec,
                "pix_fmt": info.pix_fmt, "rotation": info.rotation, "audio": info.audio_codec,
                "duration_s": info.duration,
                "crs": crs_label(geo.crs_wkt) if geo is not None else None,
                "crs_wkt": geo.crs_wkt if geo is not None else None,
                "transform": list(geo.transform)[:6] if geo is not None else None,
                "nodata": geo.nodata if geo is not None else None,
                "gcps": len(geo.gcps) if geo is not None and geo.gcps else 0,
                "rpcs": bool(geo.rpcs) if geo is not None else False,
                "band_descriptions": list(geo.band_descriptions) if geo is not None else None,
            },
            "model": self.model, "weights": self.weights,
            "weights_choice": self.weights_choice, "size_multiple": self.size_multiple, "device": self.device,
            "precision": self.precision, "tile": list(self.tile), "grid": list(self.grid),
            "tiles_per_frame": self.grid[0] * self.grid[1], "overlap": self.overlap,
            "batch": self.batch,
            "value_range": self.value_range.to_json() if self.value_range else None,
            "value_range_note": self.value_range_note, "bands": self.bands,
            "output": {
                "path": str(self.output), "kind": self.output_kind,
                "width": self.output_size[0], "height": self.output_size[1],
                "frames": self.output_frames, "bytes_per_frame": self.output_bytes_per_frame,
                "codec": self.video_codec, "pix_fmt": self.video_pix_fmt,
            },
            "memory_bytes": self.memory, "notes": list(self.notes),
            "runnable": self.runnable,
            "problems": [{"exit_code": code, "message": msg} for code, msg in self.problems],
        }


def crs_label(wkt: str | None) -> str:
    """``EPSG:32631 (WGS 84 / UTM zone 31N)`` for a WKT CRS (the name alone when no EPSG code)."""
    if not wkt:
        return "none"
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        crs = CRS.from_wkt(wkt)
    except CRSError:
        return wkt.split("\n", 1)[0][:80]
    epsg = crs.to_epsg()
    name = crs.to_dict(projjson=True).get("name", "") if hasattr(crs, "to_dict") else ""
    if epsg:
        return f"EPSG:{epsg}" + (f" ({name})" if name else "")
    return str(name or crs.to_string())


def probe(config: UpscaleConfig) -> ProbeReport:
    """Describe ``config.input`` and the job ``satvsr upscale`` would run with ``config``:
    the report of ``plan_job(config, build=False)``."""
    plan = plan_job(config, build=False)
    return report_of(plan)


def report_of(plan: JobPlan) -> ProbeReport:
    """The :class:`ProbeReport` of a plan (memory estimate, notes)."""
    config, info, tiles, res = plan.config, plan.info, plan.tiles, plan.resources
    notes = list(plan.notes)
    net = plan.model.network if plan.model is not None else None
    precision = plan.precision
    itemsize = np.dtype(info.dtype).itemsize
    frame_in = info.width * info.height * info.bands * itemsize
    frame_out = frame_in * SCALE * SCALE
    tile_px = tiles.tile_height * tiles.tile_width
    feat_ch = int(getattr(net, "feat_channels", 0) or 0)
    cache_need = 6 * tiles.n_tiles * tile_px * (feat_ch + 3) * (2 if precision != "fp32" else 4)
    strip = 3 * tiles.tile_height * SCALE * tiles.padded_width * SCALE * 4
    n_out = None
    if info.n_frames is not None:
        end = plan.end if plan.end is not None else info.n_frames
        n_out = max(0, min(end, info.n_frames) - plan.start)
    memory = {
        "network_tiles": res.bytes_per_pixel * tile_px * res.batch,
        "feature_cache": min(cache_need, res.cache_budget),
        "input_frames": 6 * frame_in,
        "output_frame": (0 if plan.streamed else frame_out) + strip * 2,
    }
    memory["total"] = sum(memory.values())
    problems = list(plan.problems)
    available = device_available(plan.device)
    if memory["total"] > available:
        problems.append((OutOfMemory.exit_code, (
            f"the plan needs an estimated {format_bytes(memory['total'])} but "
            f"{format_bytes(available)} is available on {plan.device}; use --tile auto or a "
            "smaller --tile")))
    if cache_need > res.cache_budget and config.compute.feature_cache:
        notes.append(
            f"the per-frame feature cache needs {format_bytes(cache_need)} but may use "
            f"{format_bytes(res.cache_budget)}: some features will be recomputed"
        )
    if info.vfr:
        notes.append("variable frame rate suspected: output is written at a constant rate")
    if not info.n_frames_exact:
        notes.append("frame count estimated from duration x fps")
    return ProbeReport(
        info=info, model=plan.model.name if plan.model is not None else None,
        size_multiple=plan.size_multiple, device=str(plan.device),
        precision=precision, tile=plan.tile, grid=tiles.grid,
        overlap=tiles.overlap, batch=res.batch, value_range=plan.value_range,
        value_range_note=plan.value_range_note,
        bands=plan.bands.describe() if plan.bands is not None else plan.bands_note,
        output=plan.output, output_kind=plan.kind,
        output_size=(info.width * SCALE, info.height * SCALE), output_frames=n_out,
        output_bytes_per_frame=frame_out, memory=memory, notes=tuple(notes),
        problems=tuple(problems),
        video_codec=plan.video.codec if plan.video is not None else None,
        video_pix_fmt=plan.video.pix_fmt if plan.video is not None else None,
        weights=plan.model.label if plan.model is not None else None,
        weights_choice=plan.weights_choice,
    )
