"""``satvsr probe``: describe an input and the planned job without running (or building) a network."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satvsr_cli.engine.config import UpscaleConfig
from satvsr_cli.engine.convert import plan_bands
from satvsr_cli.engine.device import resolve_device, resolve_precision
from satvsr_cli.engine.memory import format_bytes
from satvsr_cli.engine.run import SCALE, choose_resources, value_range_for
from satvsr_cli.engine.tiling import plan_tiles
from satvsr_cli.errors import SatvsrError
from satvsr_cli.io import default_output, open_source, output_kind
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
    value_range: tuple[float, float] | None
    value_range_note: str | None
    bands: str | None
    output: Path
    output_kind: str
    output_size: tuple[int, int]
    output_frames: int | None
    output_bytes_per_frame: int
    memory: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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
            "model": self.model, "size_multiple": self.size_multiple, "device": self.device,
            "precision": self.precision, "tile": list(self.tile), "grid": list(self.grid),
            "tiles_per_frame": self.grid[0] * self.grid[1], "overlap": self.overlap,
            "batch": self.batch,
            "value_range": list(self.value_range) if self.value_range else None,
            "value_range_note": self.value_range_note, "bands": self.bands,
            "output": {
                "path": str(self.output), "kind": self.output_kind,
                "width": self.output_size[0], "height": self.output_size[1],
                "frames": self.output_frames, "bytes_per_frame": self.output_bytes_per_frame,
            },
            "memory_bytes": self.memory, "notes": list(self.notes),
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


def _model_name(config: UpscaleConfig) -> tuple[str | None, list[str]]:
    """The registry name the job would use, from --weights, --model or the default weights."""
    from satvsr_cli.weights import default_weights, read_manifest

    notes: list[str] = []
    if config.weights is not None:
        return read_manifest(config.weights).network, notes
    if config.model is not None:
        return config.model, notes
    default = default_weights()
    if default is None:
        notes.append("no default weights are shipped; pass --model or --weights to upscale")
        return None, notes
    return read_manifest(default).network, notes


def probe(config: UpscaleConfig) -> ProbeReport:
    """Describe ``config.input`` and the job ``satvsr upscale`` would run with ``config``."""
    from satvsr_cli.models import build_model, get_spec

    source = open_source(
        config.input, config.input_type, bands_per_frame=config.bands_per_frame,
        autorotate=config.autorotate,
    )
    with source:
        info = source.info
    notes: list[str] = []
    out = Path(config.output) if config.output else default_output(info)
    kind = output_kind(out, info)
    name, more = _model_name(config)
    notes += more
    size_multiple = get_spec(name).size_multiple if name else 16
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    net: Any = None
    if name is not None:
        import torch

        with torch.device("meta"):
            net = build_model(name)
    res = choose_resources(
        config, info, net=net, name=name, size_multiple=size_multiple, device=device,
        precision=precision,
    )
    plan = plan_tiles(info.height, info.width, tile=res.tile, overlap=res.overlap,
                      size_multiple=size_multiple)
    vr: tuple[float, float] | None
    vr_note = None
    try:
        vr = value_range_for(info, config.value_range)
    except SatvsrError as exc:
        vr, vr_note = None, str(exc)
    streamed = False
    try:
        bplan = plan_bands(info.bands, config.bands)
        bands = bplan.describe()
        # GeoTIFF frames are written row strip by row strip when every band comes from one pass
        streamed = kind == "geotiff-frames" and len(bplan.groups) == 1 and not bplan.bicubic
    except SatvsrError as exc:
        bands = str(exc)
    itemsize = np.dtype(info.dtype).itemsize
    frame_in = info.width * info.height * info.bands * itemsize
    frame_out = frame_in * SCALE * SCALE
    tile_px = plan.tile_height * plan.tile_width
    feat_ch = int(getattr(net, "feat_channels", 0) or 0)
    cache_need = 6 * plan.n_tiles * tile_px * (feat_ch + 3) * (2 if precision != "fp32" else 4)
    strip = 3 * plan.tile_height * SCALE * plan.padded_width * SCALE * 4
    n_out = None
    if info.n_frames is not None:
        end = min(config.end, info.n_frames) if config.end is not None else info.n_frames
        n_out = max(0, end - config.start)
    memory = {
        "network_tiles": res.bytes_per_pixel * tile_px * res.batch,
        "feature_cache": min(cache_need, res.cache_budget),
        "input_frames": 6 * frame_in,
        "output_frame": (0 if streamed else frame_out) + strip * 2,
    }
    memory["total"] = sum(memory.values())
    if cache_need > res.cache_budget and config.feature_cache:
        notes.append(
            f"the per-frame feature cache needs {format_bytes(cache_need)} but may use "
            f"{format_bytes(res.cache_budget)}: some features will be recomputed"
        )
    if info.vfr:
        notes.append("variable frame rate suspected: output is written at a constant rate")
    if not info.n_frames_exact:
        notes.append("frame count estimated from duration x fps")
    return ProbeReport(
        info=info, model=name, size_multiple=size_multiple, device=str(device),
        precision=precision, tile=(plan.tile_height, plan.tile_width), grid=plan.grid,
        overlap=plan.overlap, batch=res.batch, value_range=vr, value_range_note=vr_note,
        bands=bands, output=out, output_kind=kind,
        output_size=(info.width * SCALE, info.height * SCALE), output_frames=n_out,
        output_bytes_per_frame=frame_out, memory=memory, notes=tuple(notes),
    )
