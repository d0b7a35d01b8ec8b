"""The engine core: 5-frame windows over a tiled frame, shared per-frame features, precision, OOM retry.

:class:`WindowUpscaler` turns the LR frames of one temporal window into one x4 frame. It knows
nothing about files. For each band group (see :mod:`satvsr_cli.engine.convert`) and each tile of
the plan (:mod:`satvsr_cli.engine.tiling`) it

1. cuts the tile out of each window frame (reflect-padded to the network's size multiple, exactly as
   the network's own ``forward`` pads), converts it to float [0, 1];
2. takes the per-frame features ``model.extract(tiles)`` from a cache keyed by
   ``(frame, group, tile)``: each frame's features are computed once and reused by the five windows
   that contain it (the cache has a byte budget; what does not fit is recomputed);
3. runs ``model.forward_window`` on a batch: a fixed chunk of ``batch`` tiles of one frame, or,
   when a frame has fewer tiles than ``batch``, the tiles of several consecutive output frames
   (autocast for bf16/fp16); a tile with non-finite values is recomputed in fp32 and counted;
4. blends the x4 tiles into horizontal strips (separable sum/weight) and converts finished rows to
   the output dtype right away, so no full-frame float buffer is ever held.

Out of memory (CUDA OOM, ``RuntimeError('... out of memory ...')`` or ``MemoryError``) empties the
caches, halves the batch (then the tile) and redoes the same frame; a frame is never dropped.

Determinism: every ``extract`` and ``forward_window`` call has a composition fixed by the tile
plan, the batch and the frame chunk (chunks of ``frames_per_call()`` frames aligned to the start
of the range), never by what happens to be cached, so a resumed run computes bit-identical frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from satvsr_cli.engine.backend import Runner, TorchRunner
from satvsr_cli.engine.convert import BandPlan, bicubic_band, from_unit, to_unit
from satvsr_cli.engine.memory import MIN_TILE
from satvsr_cli.engine.tiling import (
    BlendWeights,
    Tile,
    TilePlan,
    blend_weights,
    pad_indices,
    plan_tiles,
)
from satvsr_cli.engine.valuerange import ValueRange
from satvsr_cli.errors import OutOfMemory
from satvsr_cli.io.base import Frame, RowWriter

__all__ = ["EngineStats", "OutOfMemory", "RowWriter", "StripStitcher", "WindowUpscaler", "is_oom"]


def is_oom(exc: BaseException) -> bool:
    """True for CUDA/CPU out-of-memory errors."""
    if isinstance(exc, MemoryError):
        return True
    oom_cls = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_cls is not None and isinstance(exc, oom_cls):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass
class EngineStats:
    """Counters of one run of the core."""

    frames: int = 0
    tiles: int = 0
    windows: int = 0
    extracted: int = 0
    cache_hits: int = 0
    nonfinite_retries: int = 0
    nonfinite_left: int = 0
    oom_retries: int = 0
    tile_history: list[tuple[int, int]] = field(default_factory=list)


class StripStitcher:
    """Accumulates weighted x4 tiles of one band group row-strip by row-strip.

    Tiles must arrive in raster order. Whenever a new tile row starts, every HR row above it is
    final: it is normalised and handed to ``emit(y0, y1, block)`` with ``block`` of shape
    ``(3, y1 - y0, W·s)``, already cropped to the unpadded frame.
    """

    def __init__(
        self,
        plan: TilePlan,
        weights: BlendWeights,
        scale: int,
        emit: Callable[[int, int, np.ndarray], None],
        acc: np.ndarray | None = None,
    ) -> None:
        """Prepare a strip buffer of one tile height (``acc``: a buffer to reuse, if it fits)."""
        self.plan, self.weights, self.s, self.emit = plan, weights, scale, emit
        s = scale
        shape = (3, plan.tile_height * s, plan.padded_width * s)
        if acc is not None and acc.shape == shape and acc.dtype == np.float32:
            acc.fill(0.0)  # issue 11: reused across frames, no fresh pages per frame
            self.acc = acc
        else:
            self.acc = np.zeros(shape, dtype=np.float32)
        self.base = 0  # HR row of acc[:, 0]
        self.done = 0  # HR rows emitted so far
        col_norm = np.zeros(plan.padded_width * s, dtype=np.float64)
        for c, x in enumerate(plan.col_starts):
            col_norm[x * s : (x + plan.tile_width) * s] += weights.cols[c]
        row_norm = np.zeros(plan.padded_height * s, dtype=np.float64)
        for r, y in enumerate(plan.row_starts):
            row_norm[y * s : (y + plan.tile_height) * s] += weights.rows[r]
        self.inv_col = (1.0 / col_norm[: plan.width * s]).astype(np.float32)
        self.inv_row = (1.0 / row_norm).astype(np.float32)

    def _flush(self, upto: int) -> None:
        upto = min(upto, self.plan.padded_height * self.s)
        if upto <= self.done:
            return
        lo, hi = self.done - self.base, upto - self.base
        out_hi = min(upto, self.plan.height * self.s)
        if out_hi > self.done:
            n = out_hi - self.done
            block = self.acc[:, lo : lo + n, : self.plan.width * self.s]
            block *= self.inv_row[self.done : out_hi, None]
            block *= self.inv_col[None, None, :]
            self.emit(self.done, out_hi, block)
        # shift the buffer so that acc[:, 0] is row ``upto``
        keep = self.acc.shape[1] - hi
        if keep > 0:
            self.acc[:, :keep] = self.acc[:, hi:]
        self.acc[:, max(keep, 0) :] = 0.0
        self.base = upto
        self.done = upto

    def add(self, tile: Tile, hr: np.ndarray) -> None:
        """Add one x4 tile ``(3, th·s, tw·s)`` (float32) with its blend weight."""
        s = self.s
        y0 = tile.y0 * s
        if y0 > self.done:
            self._flush(y0)
        w = self.weights.tile(tile)
        r = y0 - self.base
        region = self.acc[:, r : r + hr.shape[1], tile.x0 * s : tile.x1 * s]
        region += hr * w[None]

    def finish(self) -> None:
        """Emit every remaining row."""
        self._flush(self.plan.padded_height * self.s)


class WindowUpscaler:
    """Upscale one frame from its temporal window; see the module docstring.

    Args:
        model: a network following the satvsr contract (``extract``/``forward_window``; plain
            ``forward`` is used when they are missing, without feature sharing).
        device: where the network runs.
        precision: resolved precision (``fp32``, ``bf16`` or ``fp16``).
        tile: tile size in LR pixels (``None``: the whole frame in one tile).
        overlap: tile overlap in LR pixels.
        blend: ``cosine``, ``linear`` or ``none``.
        batch: tiles per ``forward_window`` call.
        cache_budget: bytes the per-frame feature cache may hold (0 disables sharing).
        bands: the band plan; value_range/out_dtype: the value mapping of the output.
        on_warning: called with one-line warnings (OOM fallback, non-finite tiles).
        size_multiple: tiles start at and are sized in multiples of this (``None``: the
            network's ``size_multiple``; the job passes its plan's).
        runner: what runs the network (:mod:`satvsr_cli.engine.backend`); ``None``: the module
            itself through a plain :class:`~satvsr_cli.engine.backend.TorchRunner`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: torch.device,
        precision: str,
        tile: int | tuple[int, int] | None,
        overlap: int,
        blend: str,
        batch: int,
        cache_budget: int,
        bands: BandPlan,
        value_range: ValueRange | tuple[float, float],
        out_dtype: str,
        on_warning: Callable[[str], None] | None = None,
        size_multiple: int | None = None,
        runner: Runner | None = None,
    ) -> None:
        """See the class docstring."""
        self.model = model
        # issue 11: the network runs through a backend runner (torch, OpenVINO)
        self.runner: Runner = runner or TorchRunner(model, device, precision, channels_last=False)
        self.device = device
        self.precision = precision
        self.tile = tile
        self.overlap = overlap
        self.blend = blend
        self.batch = max(1, batch)
        self.cache_budget = max(0, cache_budget)
        self.bands = bands
        # a plain (lo, hi) pair is a fixed range for every band (library callers)
        self.vrange = (value_range if isinstance(value_range, ValueRange)
                       else ValueRange((float(value_range[0]),), (float(value_range[1]),),
                                       "override"))
        self.out_dtype = out_dtype
        self.on_warning = on_warning or (lambda _msg: None)
        self.scale = int(getattr(model, "scale", 4))
        self.size_multiple = size_multiple or int(getattr(model, "size_multiple", 1) or 1)
        self.shared = callable(getattr(model, "extract", None)) and callable(
            getattr(model, "forward_window", None)
        )
        self.stats = EngineStats()
        #: called with (tiles done, tiles in all) after each network call of a frame that
        #: needs several (progress within huge frames)
        self.on_tile: Callable[[int, int], None] | None = None
        self.plan: TilePlan | None = None
        self._weights: BlendWeights | None = None
        self._rows: np.ndarray | None = None
        self._cols: np.ndarray | None = None
        self._cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._cache_bytes = 0
        self._strips: list[np.ndarray] = []  # strip buffers kept for the next frames

    # ----- planning
    def set_frame_size(self, height: int, width: int) -> TilePlan:
        """(Re)plan the tiles for ``height × width`` LR frames."""
        self.plan = plan_tiles(
            height, width, tile=self.tile, overlap=self.overlap, size_multiple=self.size_multiple
        )
        self._weights = blend_weights(self.plan, self.scale, self.blend)
        self._rows = pad_indices(height, self.plan.padded_height)
        self._cols = pad_indices(width, self.plan.padded_width)
        self.stats.tile_history.append((self.plan.tile_height, self.plan.tile_width))
        self.clear_cache()
        return self.plan

    def clear_cache(self) -> None:
        """Drop every cached tile and feature."""
        self._cache.clear()
        self._cache_bytes = 0

    def forget(self, frame: int) -> None:
        """Drop the cache entries of ``frame`` (it left the ring buffer)."""
        for key in [k for k in self._cache if k[0] == frame]:
            lr, feat = self._cache.pop(key)
            self._cache_bytes -= _nbytes(lr) + (_nbytes(feat) if feat is not None else 0)

    # ----- tensors
    def _lr_tile(self, frame: Frame, group: tuple[int, int, int], tile: Tile) -> torch.Tensor:
        """The float [0, 1] tile ``(3, th, tw)`` of one frame (padded like the network pads)."""
        assert self.plan is not None and self._rows is not None and self._cols is not None
        data = frame.data
        h, w = data.shape[:2]
        if tile.y1 <= h and tile.x1 <= w:
            block = data[tile.y0 : tile.y1, tile.x0 : tile.x1]
        else:
            block = data[np.ix_(self._rows[tile.y0 : tile.y1], self._cols[tile.x0 : tile.x1])]
        chans = list(group)
        sel = block[..., chans] if chans != list(range(block.shape[2])) else block
        arr = to_unit(np.ascontiguousarray(sel), *self.vrange.arrays(chans)).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)

    def _entries(
        self,
        needed: Sequence[int],
        frames: Mapping[int, Frame],
        g: int,
        group: tuple[int, int, int],
        chunk: Sequence[tuple[int, Tile]],
        fp32: bool,
        use_cache: bool,
    ) -> dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor | None]]:
        """LR tiles and features of the frames ``needed`` for the tiles of ``chunk``.

        Features are always computed for a whole (frame, tile chunk) in one ``extract`` call and
        cached all-or-nothing, so every feature tensor comes from a call of the same
        composition whatever was cached before: results do not depend on history (resume).
        """
        found: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        for j in dict.fromkeys(needed):
            keys = [(j, g, k) for k, _t in chunk]
            if use_cache and all(k in self._cache for k in keys):
                for key in keys:
                    found[key] = self._cache[key]
                self.stats.cache_hits += len(keys)
                continue
            lrs = [self._lr_tile(frames[j], group, tile) for _k, tile in chunk]
            feats: list[torch.Tensor | None] = [None] * len(lrs)
            if self.shared:
                out = self.runner.extract(torch.stack(lrs), fp32)
                feats = list(out.unbind(0))
                self.stats.extracted += len(lrs)
            size = sum(_nbytes(x) + (_nbytes(f) if f is not None else 0)
                       for x, f in zip(lrs, feats, strict=True))
            store = use_cache and self._cache_bytes + size <= self.cache_budget
            for key, lr, feat in zip(keys, lrs, feats, strict=True):
                if store:
                    # clone: unbind() views would keep the whole batch tensor alive
                    entry = (lr, feat.clone() if feat is not None else None)
                    self._cache[key] = entry
                else:
                    entry = (lr, feat)
                found[key] = entry
            if store:
                self._cache_bytes += size
        return found

    def _run_windows(
        self,
        windows: Sequence[list[int]],
        frames: Mapping[int, Frame],
        g: int,
        group: tuple[int, int, int],
        chunk: Sequence[tuple[int, Tile]],
        fp32: bool,
        use_cache: bool,
    ) -> torch.Tensor:
        """``(len(windows)·len(chunk), 3, th·s, tw·s)``: every window with every tile of ``chunk``
        (window-major), in one ``forward_window`` call."""
        needed = [j for window in windows for j in window]
        entries = self._entries(needed, frames, g, group, chunk, fp32, use_cache)
        pairs = [(window, k) for window in windows for k, _t in chunk]
        clip = torch.stack([torch.stack([entries[(j, g, k)][0] for j in w]) for w, k in pairs])
        if self.shared:
            feats = torch.stack(
                [torch.stack([entries[(j, g, k)][1] for j in w])  # type: ignore[misc]
                 for w, k in pairs]
            )
            out = self.runner.forward_window(clip, feats, fp32)
        else:
            out = self.runner.forward(clip, fp32)
        self.stats.windows += len(pairs)
        return out

    # ----- frames
    def frames_per_call(self) -> int:
        """How many consecutive output frames one call should take so that batches fill up."""
        if self.plan is None:
            return 1
        return max(1, self.batch // self.plan.n_tiles)

    def upscale(self, t: int, window: list[int], frames: Mapping[int, Frame]) -> np.ndarray:
        """The x4 frame ``t`` as ``(C, sH, sW)`` in the output dtype, from the frames of ``window``."""
        out = self.upscale_many([(t, window)], frames)[0]
        assert out is not None
        return out

    def can_stream(self) -> bool:
        """True when output rows are final as soon as they are stitched (one band group, no
        bicubic bands), so that a :class:`RowWriter` can take them without a full-frame buffer."""
        return len(self.bands.groups) == 1 and not self.bands.bicubic

    def upscale_many(
        self,
        items: Sequence[tuple[int, list[int]]],
        frames: Mapping[int, Frame],
        writers: Sequence[RowWriter | None] | None = None,
    ) -> list[np.ndarray | None]:
        """Several output frames ``(t, window)`` at once (their tiles share batches).

        Each result is ``(C, sH, sW)`` in the output dtype, or ``None`` when a row writer was
        given for that item (see :meth:`can_stream`): its rows then go to the writer as they are
        finished, so the full x4 frame is never held in memory.

        Retries with a smaller batch, then half the tile, after an out-of-memory error (row
        writers are reset first); raises :class:`OutOfMemory` when the smallest tile does not
        fit either.
        """
        h, w = frames[items[0][0]].data.shape[:2]
        if self.plan is None or (self.plan.height, self.plan.width) != (h, w):
            self.set_frame_size(h, w)
        ws: list[RowWriter | None] = list(writers) if writers is not None else [None] * len(items)
        if any(x is not None for x in ws) and not self.can_stream():
            raise ValueError("row writers need a single band group without bicubic bands")
        while True:
            try:
                outs = self._upscale_once(items, frames, ws)
                self.stats.frames += len(items)
                return outs
            except BaseException as exc:  # only OOM is handled, the rest re-raised
                if not is_oom(exc):
                    raise
                for writer in ws:
                    if writer is not None:
                        writer.reset()
                self._handle_oom(items[0][0], exc)

    def _handle_oom(self, t: int, exc: BaseException) -> None:
        assert self.plan is not None
        self.clear_cache()
        self._strips.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        th, tw = self.plan.tile_height, self.plan.tile_width
        floor = max(self.size_multiple, MIN_TILE // self.size_multiple * self.size_multiple)
        if self.batch > 1:
            self.batch = max(1, self.batch // 2)
            self.stats.oom_retries += 1
            self.on_warning(f"out of memory on frame {t}; batch reduced to {self.batch}, retrying")
            return
        if max(th, tw) <= floor:
            raise OutOfMemory(
                f"out of memory on frame {t} even with {th}x{tw} tiles; free memory or use a "
                "smaller network"
            ) from None
        nh = max(floor, (th // 2) // self.size_multiple * self.size_multiple)
        nw = max(floor, (tw // 2) // self.size_multiple * self.size_multiple)
        self.tile = (nh, nw)
        m = self.size_multiple
        self.overlap = max(0, min(self.overlap, min(nh, nw) // 2, min(nh, nw) - m))
        self.stats.oom_retries += 1
        self.on_warning(
            f"out of memory on frame {t} with {th}x{tw} tiles; retrying with {nh}x{nw}"
        )
        self.set_frame_size(self.plan.height, self.plan.width)

    def _upscale_once(
        self,
        items: Sequence[tuple[int, list[int]]],
        frames: Mapping[int, Frame],
        writers: Sequence[RowWriter | None],
    ) -> list[np.ndarray | None]:
        assert self.plan is not None and self._weights is not None
        plan, s = self.plan, self.scale
        n_out = self.bands.n_bands
        outs: list[np.ndarray | None] = [
            None if writer is not None
            else np.empty((n_out, plan.height * s, plan.width * s), dtype=self.out_dtype)
            for writer in writers
        ]
        tiles = list(enumerate(plan.tiles))
        chunks = [tiles[i : i + self.batch] for i in range(0, len(tiles), self.batch)]
        windows = [window for _t, window in items]
        tiles_total = len(tiles) * len(items) * len(self.bands.groups)
        tiles_done = 0
        report = self.on_tile if len(chunks) > 1 or len(self.bands.groups) > 1 else None
        for g, group in enumerate(self.bands.groups):
            targets = [
                (b, [c for gg, c in self.bands.sources(b) if gg == g]) for b in range(n_out)
            ]
            targets = [(b, cs) for b, cs in targets if cs]
            stitchers = []
            for (t, _w), out, writer in zip(items, outs, writers, strict=True):
                emit = (
                    self._emitter(out, targets) if out is not None
                    else self._row_emitter(writer, targets, frames[t].valid)  # type: ignore[arg-type]
                )
                spare = self._strips.pop() if self._strips else None
                stitchers.append(StripStitcher(plan, self._weights, s, emit, spare))
            for chunk in chunks:
                with torch.inference_mode():
                    hr = self._run_windows(windows, frames, g, group, chunk, False, True)
                    jobs = [(n, k, tile) for n in range(len(items)) for k, tile in chunk]
                    hr = self._fix_nonfinite(items, jobs, hr, frames, g, group)
                    hr_np = hr.float().cpu().numpy()
                for (n, _k, tile), y in zip(jobs, hr_np, strict=True):
                    stitchers[n].add(tile, y)
                self.stats.tiles += len(jobs)
                tiles_done += len(jobs)
                if report is not None:
                    report(tiles_done, tiles_total)
            for st in stitchers:
                st.finish()
                self._strips.append(st.acc)
            del self._strips[:-len(stitchers)]
        for (t, _window), out in zip(items, outs, strict=True):
            if out is None:
                continue
            for b in self.bands.bicubic:  # the network bands' value rule (convert.bicubic_band)
                out[b] = bicubic_band(frames[t].data[..., b], s, *self.vrange.band(b),
                                      self.out_dtype, clip=self.vrange.clip)
        return outs

    def _emitter(
        self, out: np.ndarray, targets: list[tuple[int, list[int]]]
    ) -> Callable[[int, int, np.ndarray], None]:
        def emit(y0: int, y1: int, block: np.ndarray) -> None:
            for b, cs in targets:
                vals = block[cs[0]] if len(cs) == 1 else block[cs].mean(axis=0)
                out[b, y0:y1] = from_unit(vals, *self.vrange.band(b), self.out_dtype,
                                          clip=self.vrange.clip)

        return emit

    def _row_emitter(
        self, writer: RowWriter, targets: list[tuple[int, list[int]]], valid: np.ndarray | None
    ) -> Callable[[int, int, np.ndarray], None]:
        s = self.scale

        def emit(y0: int, y1: int, block: np.ndarray) -> None:
            rows = np.empty((len(targets), y1 - y0, block.shape[2]), dtype=self.out_dtype)
            for b, cs in targets:
                vals = block[cs[0]] if len(cs) == 1 else block[cs].mean(axis=0)
                rows[b] = from_unit(vals, *self.vrange.band(b), self.out_dtype,
                                    clip=self.vrange.clip)
            vrows = None
            if valid is not None:  # HR rows are multiples of the scale (tile starts x s)
                lr = valid[y0 // s : -(-y1 // s)]
                vrows = np.repeat(np.repeat(lr, s, axis=0), s, axis=1)[: y1 - y0]
            writer.write_rows(y0, rows, vrows)

        return emit

    def _fix_nonfinite(
        self,
        items: Sequence[tuple[int, list[int]]],
        jobs: Sequence[tuple[int, int, Tile]],
        hr: torch.Tensor,
        frames: Mapping[int, Frame],
        g: int,
        group: tuple[int, int, int],
    ) -> torch.Tensor:
        """Recompute tiles with NaN/Inf in fp32 (no cache); zero what is still non-finite."""
        ok = torch.isfinite(hr).flatten(1).all(dim=1)
        if bool(ok.all()):
            return hr
        hr = hr.float().clone()
        for i in torch.nonzero(~ok).flatten().tolist():
            n, k, tile = jobs[i]
            t, window = items[n]
            if self.precision != "fp32":
                redo = self._run_windows([window], frames, g, group, [(k, tile)], True, False)
                self.stats.nonfinite_retries += 1
                hr[i] = redo[0].float()
            if not bool(torch.isfinite(hr[i]).all()):
                self.stats.nonfinite_left += 1
                self.on_warning(f"frame {t}: non-finite network output in fp32; set to 0")
                hr[i] = torch.nan_to_num(hr[i], nan=0.0, posinf=0.0, neginf=0.0)
            else:
                self.on_warning(
                    f"frame {t}: non-finite values in {self.precision}; tile recomputed in fp32"
                )
        return hr


def _nbytes(x: torch.Tensor) -> int:
    return int(x.numel() * x.element_size())
