"""The training loop: one plain loop with callbacks, atomic checkpoints, exact resume, DDP, export.

Run folder layout::

    RUN_DIR/
      config.json              resolved configuration (also inside every checkpoint)
      command.txt              the command lines that started and resumed the run
      log.jsonl, log.csv       training rows every log_every iterations, validation rows
      log.png                  loss and validation PSNR over iterations (with matplotlib)
      tb/                      TensorBoard events (only when tensorboard is installed)
      checkpoints/iter_NNNNNNNN.pt   the last keep_last saves
      checkpoints/best.pt      the save with the best mean validation PSNR
      export/<network>.safetensors + .json   the exported inference weights

A checkpoint is one ``torch.save`` file written under a temporary name and renamed: model, EMA,
optimiser, schedule position, GradScaler, iteration, RNG states (as tensors), best score, wall
time and the resolved configuration. It holds only tensors and plain Python values, so it loads
with ``torch.load(weights_only=True)``. Training batches are a pure function of
``(seed, iteration, rank)`` (:mod:`satvsr_cli.train.data`), so ``--resume`` continues the same
random stream: on CPU in deterministic mode, a run stopped and resumed ends with bit-identical
weights to an uninterrupted one.

Distributed: under ``torchrun`` the rank and world size come from ``RANK``/``LOCAL_RANK``/
``WORLD_SIZE``; gradients are averaged by DDP (gloo on CPU, NCCL on CUDA); every rank draws its
own samples; rank 0 alone logs, validates, checkpoints and exports.
"""

from __future__ import annotations

import copy
import csv
import datetime as _dt
import io
import json
import math
import os
import pickle
import platform
import random
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn

from satvsr_cli import __version__
from satvsr_cli.errors import InputError, Interrupted, OutputError, SatvsrError, WeightsError
from satvsr_cli.fsutil import atomic_write_bytes
from satvsr_cli.models.blocks import VSRNetwork
from satvsr_cli.train.config import (
    RunConfig,
    TrainConfig,
    flatten,
    from_dict,
    to_dict,
    validate,
)
from satvsr_cli.train.data import TrainData, batch_stream

CKPT_FORMAT = "satvsr-train-checkpoint/1"
CKPT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^iter_(\d+)\.pt$")
#: Keys that may change when a run is resumed (they do not alter the training trajectory).
RESUMABLE_KEYS = frozenset({
    "train.iters", "train.val_every", "train.val_max_frames", "train.log_every",
    "train.ckpt_every", "train.keep_last", "train.device", "train.threads", "train.export",
    "data.num_workers", "data.cache", "data.cache_gib",
    "data.val",
})
CSV_FIELDS = ("iter", "epoch", "loss", "lr", "it_per_s", "wall_s", "val_psnr", "val_ssim")

Log = Callable[[str], None]
Callback = Callable[["Trainer", dict[str, Any]], None]


# --------------------------------------------------------------------------- small pure pieces


def lr_at(it: int, t: TrainConfig, total: int) -> float:
    """Learning rate of iteration ``it`` (0-based): warm-up, then multistep, cosine or constant."""
    base = t.lr
    if t.warmup > 0 and it < t.warmup:
        return base * (it + 1) / t.warmup
    if t.schedule == "multistep":
        return base * t.gamma ** sum(it >= m for m in t.milestones)
    if t.schedule == "cosine":
        span = max(1, total - t.warmup)
        prog = min(1.0, (it - t.warmup) / span)
        floor = base * t.min_lr_ratio
        return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * prog))
    return base


def loss_fn(pred: torch.Tensor, gt: torch.Tensor, t: TrainConfig) -> torch.Tensor:
    """Mean L1, or Charbonnier ``sqrt((x − y)² + ε²)``, over every pixel and channel."""
    if t.loss == "charbonnier":
        return torch.sqrt((pred - gt) ** 2 + t.charbonnier_eps**2).mean()
    return (pred - gt).abs().mean()


class EMA:
    """Exponential moving average of a network's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend in ``model`` after ``step`` completed iterations (short warm-up of the decay)."""
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for ep, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ep.lerp_(p.detach(), 1.0 - d)
        for eb, b in zip(self.module.buffers(), model.buffers(), strict=True):
            eb.copy_(b)


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size from the torchrun environment (never from ``--local_rank``)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process logs, validates and checkpoints."""
        return self.rank == 0


def dist_info() -> DistInfo:
    """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (all default to a single process)."""
    try:
        return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
                        int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise InputError("RANK, LOCAL_RANK and WORLD_SIZE must be integers") from None


def pick_device(name: str, dist: DistInfo) -> torch.device:
    """``auto`` → CUDA (this process's local rank) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.world_size > 1:
        name = f"cuda:{dist.local_rank}"
    from satvsr_cli.device import resolve_device

    resolve_device(name, mps=False)  # the project's one device check (DeviceError, exit code 2)
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    """torch, CUDA, numpy and Python RNG states as tensors and plain values."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state(legacy=True))
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached": float(np_state[4])},
        "python": {"version": int(py_state[0]),
                   "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def list_checkpoints(run_dir: Path) -> list[Path]:
    """``iter_*.pt`` files of a run, oldest first."""
    d = run_dir / CKPT_DIR
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint safely (``weights_only``) and check its format."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise InputError(f"{path}: not a satvsr training checkpoint")
    return ckpt


def hardware() -> dict[str, Any]:
    """A short description of the machine, for manifests."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
    if torch.cuda.is_available():
        hw["cuda"] = torch.cuda.get_device_name(0)
    return hw


def _val_label(path: str, taken: set[str]) -> str:
    parts = Path(path).parts
    label = "/".join(parts[-2:]) if len(parts) >= 2 else path
    base, k = label, 2
    while label in taken:
        label, k = f"{base}#{k}", k + 1
    taken.add(label)
    return label


def absolutize(cfg: RunConfig) -> RunConfig:
    """Source and validation paths made absolute (so a run can be resumed from anywhere)."""
    srcs = tuple(replace(s, path=os.path.abspath(s.path)) for s in cfg.data.sources)
    val = tuple(os.path.abspath(v) for v in cfg.data.val)
    return replace(cfg, data=replace(cfg.data, sources=srcs, val=val))


def resolve(cfg: RunConfig, iters_per_epoch: int) -> RunConfig:
    """Fill the data-dependent values: total iterations, milestones and validation interval."""
    t = cfg.train
    iters = t.iters if t.iters is not None else max(1, math.ceil((t.epochs or 1) * iters_per_epoch))
    milestones = t.milestones or tuple(round(e * iters_per_epoch) for e in t.milestone_epochs)
    val_every = t.val_every if t.val_every is not None else iters_per_epoch
    return replace(cfg, train=replace(t, iters=iters, milestones=milestones, val_every=val_every))


def check_resume_changes(saved: RunConfig, wanted: RunConfig) -> None:
    """Refuse changes that would alter a resumed run's trajectory (one-line error)."""
    a, b = flatten(to_dict(saved)), flatten(to_dict(wanted))
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_KEYS or a.get(key) == b.get(key):
            continue
        raise InputError(
            f"--resume: {key} is {a.get(key)!r} in the run but {b.get(key)!r} now; a resumed run "
            "keeps its configuration (only iterations, logging, validation and checkpoint "
            "intervals may change); start a new run with another --out"
        )


# --------------------------------------------------------------------------- trainer


@dataclass
class TrainResult:
    """What a finished (or exported) run produced."""

    run_dir: Path
    iterations: int
    wall_time_s: float
    export: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    it_per_s: float | None = None


class Trainer:
    """Trains one network on :class:`TrainData` as configured; see the module docstring.

    Events for :meth:`add_callback`: ``on_start``, ``on_iter_end`` (every iteration: iter,
    iters, loss, lr, it_per_s, eta_s), ``on_log`` (every ``log_every``), ``on_validation``,
    ``on_checkpoint`` and ``on_end``. Callbacks run on rank 0 only.
    """

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        *,
        checkpoint: dict[str, Any] | None = None,
        checkpoint_path: Path | None = None,
        log: Log | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.dist = dist_info()
        self._log_fn = log or (lambda s: print(s, file=sys.stderr))
        self.callbacks: dict[str, list[Callback]] = {}
        self.argv = argv if argv is not None else sys.argv
        self.ckpt = checkpoint
        self.resume_path = checkpoint_path
        self.cfg = absolutize(cfg)
        validate(self.cfg)
        self._plot_note = False  # the "no matplotlib" line is logged once

    # -- plumbing
    def add_callback(self, event: str, fn: Callback) -> None:
        """Call ``fn(trainer, info)`` on ``event`` (rank 0 only)."""
        self.callbacks.setdefault(event, []).append(fn)

    def _emit(self, event: str, info: dict[str, Any]) -> None:
        if self.dist.main:
            for fn in self.callbacks.get(event, []):
                fn(self, info)

    def log(self, msg: str) -> None:
        """A status line (rank 0 only)."""
        if self.dist.main:
            self._log_fn(msg)

    # -- main entry
    def fit(self) -> TrainResult:
        """Train to ``train.iters``; export at the end. Ctrl-C/SIGTERM save and raise Interrupted."""
        cfg = self.cfg
        dist = self.dist
        det_before = torch.are_deterministic_algorithms_enabled()
        threads_before = torch.get_num_threads()
        pg = False
        try:
            if dist.world_size > 1 and not torch.distributed.is_initialized():
                import torch.distributed as tdist

                backend = "nccl" if pick_device(cfg.train.device, dist).type == "cuda" else "gloo"
                tdist.init_process_group(backend=backend, timeout=_dt.timedelta(hours=2))
                pg = True
            return self._fit(cfg)
        finally:
            torch.use_deterministic_algorithms(det_before)
            torch.set_num_threads(threads_before)
            if pg:
                torch.distributed.destroy_process_group()

    def _fit(self, cfg: RunConfig) -> TrainResult:
        from satvsr_cli.models import build_model, get_spec

        dist = self.dist
        t0_wall = time.perf_counter()
        spec = get_spec(cfg.model.name)
        device = pick_device(cfg.train.device, dist)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed % 2**32)
        random.seed(cfg.train.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

        data = TrainData(cfg, spec.frames, log=self.log, world_size=dist.world_size)
        ipe = data.iters_per_epoch(cfg.train.batch)
        cfg = resolve(cfg, ipe)
        # record every constructor keyword, so that checkpoints and exports rebuild the same
        # network even if the registry's defaults change later
        cfg = replace(cfg, model=replace(cfg.model, kwargs={**spec.default_kwargs,
                                                            **cfg.model.kwargs}))
        self.cfg = cfg
        t = cfg.train
        total = int(t.iters or 1)

        torch.manual_seed(t.seed)
        net = build_model(cfg.model.name, **cfg.model.kwargs)
        init_info = self.ckpt.get("init") if self.ckpt is not None else None
        if t.init and self.ckpt is None:
            init_info = load_init(net, t.init, cfg.model.name, cfg.model.kwargs)
            self.log(f"starting from {t.init} ({init_info['path']}, sha256 "
                     f"{init_info['sha256'][:12]}…)")
        net = net.to(device)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=t.lr, betas=t.betas, eps=t.eps,
                               weight_decay=t.weight_decay)
        use_amp = device.type == "cuda" and t.amp != "none"
        amp_dtype = torch.bfloat16 if t.amp == "bf16" else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and t.amp == "fp16")
        if t.amp != "none" and not use_amp:
            self.log(f"note: --amp {t.amp} applies on CUDA only; training in fp32 on {device}")
        ema = EMA(net, t.ema) if t.ema > 0 else None
        align_loss = None
        if t.align_weight > 0:
            if isinstance(net, VSRNetwork) and type(net).alignment_loss is not VSRNetwork.alignment_loss:
                net.record_alignment(True)
                align_loss = net.alignment_loss
            else:
                self.log(f"note: {cfg.model.name} has no alignment loss; train.align_weight ignored")

        start = 0
        best: dict[str, Any] = {"psnr": None, "iteration": None}
        wall_before = 0.0
        last_val: dict[str, Any] = {}
        if self.ckpt is not None:
            ck = self.ckpt
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if ema is not None and ck.get("ema") is not None:
                ema.module.load_state_dict(ck["ema"])
            if ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
            set_rng_state(ck["rng"])
            start = int(ck["iteration"])
            best = dict(ck.get("best") or best)
            wall_before = float(ck.get("wall_time_s", 0.0))
            last_val = dict(ck.get("val") or {})
            self.log(f"resuming from {self.resume_path} at iteration {start}")
            if int(ck.get("world_size", 1)) != dist.world_size:
                self.log(f"warning: the run used {ck.get('world_size', 1)} processes, now "
                         f"{dist.world_size}: the batches drawn from here on differ")
        model: nn.Module = net
        if dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)

        val_roots = self._val_clips(cfg)
        if dist.main:
            self._prepare_run_dir(cfg, start)
        tb = self._tensorboard() if dist.main else None
        n_params = sum(p.numel() for p in net.parameters())
        self._emit("on_start", {
            "iter": start, "iters": total, "params": n_params, "device": str(device),
            "world_size": dist.world_size, "iters_per_epoch": ipe, "data": data.describe(),
            "config": cfg,
        })
        self.log(f"{cfg.model.name}: {n_params / 1e6:.3f} M params on {device}"
                 f"{f' × {dist.world_size} processes' if dist.world_size > 1 else ''}; "
                 f"iterations {start}→{total}, {ipe} per epoch, batch {t.batch}, "
                 f"LR patch {cfg.data.patch}, recipe {cfg.recipe}")

        stop = {"signal": None, "count": 0}
        old_handlers = self._install_signals(stop)
        stream: Iterator[tuple[torch.Tensor, torch.Tensor]] = batch_stream(
            data, start, total, dist.rank, cfg.data.num_workers)
        win_loss, win_n, win_t = 0.0, 0, time.perf_counter()
        train_time, train_its = 0.0, 0
        ips_ema: float | None = None
        it = start

        def snapshot(iteration: int) -> dict[str, Any]:
            return {
                "format": CKPT_FORMAT, "iteration": iteration, "config": to_dict(cfg),
                "network": cfg.model.name, "model_kwargs": dict(cfg.model.kwargs),
                "model": net.state_dict(), "ema": ema.module.state_dict() if ema else None,
                "optimizer": opt.state_dict(),
                "scheduler": {"kind": t.schedule, "iteration": iteration,
                              "lr": lr_at(max(iteration - 1, 0), t, total)},
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": rng_state(), "best": dict(best), "val": dict(last_val),
                "wall_time_s": wall_before + time.perf_counter() - t0_wall,
                "world_size": dist.world_size, "data": data.describe(),
                "satvsr_version": __version__, "torch_version": str(torch.__version__),
                "init": init_info,
            }

        try:
            while it < total:
                ts = time.perf_counter()
                lr = lr_at(it, t, total)
                for g in opt.param_groups:
                    g["lr"] = lr
                lr_b, gt_b = next(stream)
                lr_b = lr_b.to(device, non_blocking=True)
                gt_b = gt_b.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = model(lr_b)
                loss = loss_fn(out.float(), gt_b, t)
                if align_loss is not None:
                    aux = align_loss(lr_b)
                    if aux is not None:
                        loss = loss + t.align_weight * aux.float()
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if t.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
                scaler.step(opt)
                scaler.update()
                it += 1
                if ema is not None:
                    ema.update(net, it)
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise SatvsrError(f"loss became {lv} at iteration {it}; lower --lr or use "
                                      "--set train.grad_clip=1")
                dt = time.perf_counter() - ts
                train_time += dt
                train_its += 1
                ips_ema = 1.0 / dt if ips_ema is None else 0.9 * ips_ema + 0.1 / dt
                win_loss += lv
                win_n += 1
                self._emit("on_iter_end", {"iter": it, "iters": total, "loss": lv, "lr": lr,
                                           "it_per_s": ips_ema,
                                           "eta_s": (total - it) / ips_ema if ips_ema else None})
                if it % t.log_every == 0 or it == total:
                    now = time.perf_counter()
                    row = {"iter": it, "epoch": round(it / ipe, 3), "loss": win_loss / win_n,
                           "lr": lr, "it_per_s": win_n / max(now - win_t, 1e-9),
                           "wall_s": round(wall_before + now - t0_wall, 2)}
                    win_loss, win_n, win_t = 0.0, 0, now
                    if dist.main:
                        self._write_row(row, tb)
                    self._emit("on_log", row)
                if t.val_every and (it % t.val_every == 0 or it == total) and val_roots:
                    tx = time.perf_counter()
                    if dist.main:
                        vnet = ema.module if ema is not None else net
                        last_val = self._validate(vnet, val_roots, device, cfg, it, tb)
                        mean_psnr = float(np.mean([v["psnr"] for v in last_val.values()]))
                        if best["psnr"] is None or mean_psnr > best["psnr"]:
                            best = {"psnr": mean_psnr, "iteration": it}
                            atomic_torch_save(snapshot(it), self.run_dir / CKPT_DIR / "best.pt")
                            self.log(f"new best: {mean_psnr:.3f} dB at iteration {it}")
                    self._barrier()
                    win_t += time.perf_counter() - tx  # validation time is not training time
                if it % t.ckpt_every == 0 or it == total:
                    tx = time.perf_counter()
                    self._save(snapshot, it)
                    win_t += time.perf_counter() - tx
                if self._should_stop(stop):
                    path = self._save(snapshot, it)
                    raise Interrupted(f"interrupted at iteration {it}/{total}; checkpoint "
                                      f"{path}; continue with --resume")
        finally:
            self._restore_signals(old_handlers)
            if tb is not None:
                tb.close()
        wall = wall_before + time.perf_counter() - t0_wall
        ips = train_its / train_time if train_time > 0 else None
        result = TrainResult(self.run_dir, it, wall, metrics=last_val, best=best, it_per_s=ips)
        if dist.main:
            self._plot(cfg)
            result.export = export_run(self.run_dir, which=t.export, log=self.log)
        self._barrier()
        self._emit("on_end", {"iter": it, "iters": total, "export": result.export,
                              "metrics": last_val, "best": best, "it_per_s": ips,
                              "wall_time_s": wall})
        return result

    # -- helpers of fit
    def _val_clips(self, cfg: RunConfig) -> dict[str, list[Any]]:
        from satvsr_cli.jilin import find_clips

        roots: dict[str, list[Any]] = {}
        taken: set[str] = set()
        for v in cfg.data.val:
            clips = find_clips(v, min_frames=1)
            roots[_val_label(v, taken)] = clips
        train_paths = {os.path.realpath(s.path) for s in cfg.data.sources}
        for v in cfg.data.val:
            if os.path.realpath(v) in train_paths:
                self.log(f"warning: {v} is both a training source and a validation root")
        return roots

    def _validate(self, net: nn.Module, roots: dict[str, list[Any]], device: torch.device,
                  cfg: RunConfig, it: int, tb: Any) -> dict[str, Any]:
        from satvsr_cli.eval import evaluate_model

        tv = time.perf_counter()
        out: dict[str, Any] = {}
        for label, clips in roots.items():
            res = evaluate_model(net, clips, device=device, max_frames=cfg.train.val_max_frames,
                                 temporal_padding=cfg.data.temporal_padding)
            out[label] = {"psnr": round(res.psnr, 4), "ssim": round(res.ssim, 5),
                          "frames": res.frames}
        row = {"iter": it, "val": out, "val_s": round(time.perf_counter() - tv, 2),
               "val_psnr": float(np.mean([v["psnr"] for v in out.values()])),
               "val_ssim": float(np.mean([v["ssim"] for v in out.values()]))}
        self._write_row(row, tb)
        self.log("validation @" + str(it) + ": " + ", ".join(
            f"{k} {v['psnr']:.3f} dB / {v['ssim']:.4f}" for k, v in out.items()))
        self._emit("on_validation", row)
        self._plot(cfg)
        return out

    def _plot(self, cfg: RunConfig) -> None:
        """Redraw ``log.png`` (loss and validation PSNR) beside ``log.csv``; rank 0 only."""
        from satvsr_cli.train.plot import have_matplotlib, plot_log

        if not self.dist.main:
            return
        if not have_matplotlib():
            if not self._plot_note:
                self.log("note: matplotlib is not installed, so no log.png "
                         "(pip install 'satvsr[plot]')")
                self._plot_note = True
            return
        try:
            plot_log(self.run_dir / "log.csv", self.run_dir / "log.png", title=cfg.model.name)
        except (OSError, ValueError, RuntimeError) as exc:  # a picture never stops training
            self.log(f"warning: could not draw log.png ({exc})")

    def _save(self, snapshot: Callable[[int], dict[str, Any]], it: int) -> Path:
        path = self.run_dir / CKPT_DIR / f"iter_{it:08d}.pt"
        if self.dist.main:
            atomic_torch_save(snapshot(it), path)
            for old in list_checkpoints(self.run_dir)[: -self.cfg.train.keep_last]:
                old.unlink(missing_ok=True)
            self._emit("on_checkpoint", {"iter": it, "path": path})
        self._barrier()
        return path

    def _barrier(self) -> None:
        if self.dist.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def _should_stop(self, stop: dict[str, Any]) -> bool:
        flag = 1 if stop["signal"] is not None else 0
        if self.dist.world_size > 1 and torch.distributed.is_initialized():
            ft = torch.tensor([flag], dtype=torch.int32)
            if torch.distributed.get_backend() == "nccl":
                ft = ft.cuda()
            torch.distributed.all_reduce(ft, op=torch.distributed.ReduceOp.MAX)
            flag = int(ft.item())
        return bool(flag)

    def _install_signals(self, stop: dict[str, Any]) -> dict[int, Any]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: FrameType | None) -> None:
            stop["count"] += 1
            if stop["count"] > 1:
                raise KeyboardInterrupt
            stop["signal"] = signum
            self.log("stopping after this iteration (a checkpoint is saved); "
                     "press Ctrl-C again to abort at once")

        old: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signals(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    def _prepare_run_dir(self, cfg: RunConfig, start: int) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(to_dict(cfg), indent=2) + "\n"
        tmp = self.run_dir / ".config.json.partial"
        tmp.write_text(text)
        os.replace(tmp, self.run_dir / "config.json")
        with open(self.run_dir / "command.txt", "a") as f:
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            f.write(f"{stamp} start@{start}: {' '.join(self.argv)}\n")
        # a resumed run rewrites the iterations after its checkpoint: drop their old rows
        jl = self.run_dir / "log.jsonl"
        if jl.exists():
            rows = [ln for ln in jl.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in rows if json.loads(ln).get("iter", 0) <= start]
            jl.write_text("".join(ln + "\n" for ln in keep))
        cs = self.run_dir / "log.csv"
        if cs.exists():
            with open(cs, newline="") as f:
                crow = [r for r in csv.DictReader(f) if int(r["iter"]) <= start]
            with open(cs, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
                w.writeheader()
                w.writerows(crow)

    def _write_row(self, row: dict[str, Any], tb: Any) -> None:
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        cs = self.run_dir / "log.csv"
        new = not cs.exists()
        with open(cs, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in CSV_FIELDS})
        if tb is not None:
            for k in ("loss", "lr", "it_per_s", "val_psnr", "val_ssim"):
                if k in row:
                    tb.add_scalar(f"train/{k}" if not k.startswith("val") else f"val/{k[4:]}",
                                  row[k], row["iter"])

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.run_dir / "tb"))


def load_init(net: nn.Module, ref: str, network: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Load the weights ``ref`` (shipped id or file) into ``net`` for fine-tuning.

    Returns:
        What to record: the reference as given, the resolved path, network and sha256.

    Raises:
        WeightsError: other network, other configuration, or weights that do not load.
    """
    from satvsr_cli.weights import load_weights, read_manifest

    manifest = read_manifest(ref)
    if manifest.network != network:
        return _grow_init(net, ref, manifest, network)
    ours = json.loads(json.dumps(kwargs))
    theirs = json.loads(json.dumps(manifest.config))
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    source, _ = load_weights(manifest.path, network=network)
    try:
        # options without tensors (e.g. local_upsample) may differ: fine-tuning adapts to them
        net.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError:
        shown = ", ".join(f"{k} {theirs.get(k)!r} vs {ours.get(k)!r}" for k in diff[:3])
        raise WeightsError(f"--init {ref}: its '{network}' configuration differs from this "
                           f"run's ({shown}{', …' if len(diff) > 3 else ''}) and its tensors do "
                           "not fit; set model.kwargs to match") from None
    return {"ref": str(ref), "path": str(manifest.path.resolve()), "network": network,
            "config_changes": {k: [theirs.get(k), ours.get(k)] for k in diff},
            "sha256": manifest.sha256}


def _grow_init(net: nn.Module, ref: str, manifest: Any, network: str) -> dict[str, Any]:
    """``--init`` with a smaller network of the same family: grow it into ``net`` keeping its
    output (models/grow.py), e.g. lgtd_small weights into the lgtd_base quality preset."""
    from satvsr_cli.models import get_spec
    from satvsr_cli.models.grow import GrowError, grow_into
    from satvsr_cli.weights import load_weights

    refuse = (f"--init {ref} holds '{manifest.network}' weights; this run trains '{network}' "
              f"(pass --model {manifest.network}")
    if get_spec(manifest.network).family != get_spec(network).family:
        raise WeightsError(refuse + ")")
    source, _ = load_weights(manifest.path, network=manifest.network)
    try:
        report = grow_into(net, source.state_dict())
    except GrowError as exc:
        raise WeightsError(f"{refuse}, or a larger '{network}' they grow into: {exc})") from None
    return {"ref": str(ref), "path": str(manifest.path.resolve()), "network": network,
            "grown_from": manifest.network,
            "grow": {k: len(v) for k, v in report.items()} | {"identity_blocks": report["identity"]},
            "config_changes": {}, "sha256": manifest.sha256}


def find_resume_checkpoint(run_dir: Path, resume: str | Path | bool) -> Path:
    """The checkpoint ``--resume`` means: the latest ``iter_*.pt`` of the run, or a given path."""
    if resume is True or str(resume) in ("auto", "latest"):
        found = list_checkpoints(run_dir)
        if not found:
            raise InputError(f"{run_dir}: no checkpoint to resume from "
                             f"(expected {CKPT_DIR}/iter_*.pt)")
        return found[-1]
    path = Path(str(resume))
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    return path


def prepare(
    out: str | Path,
    *,
    model: str | None = None,
    recipe_name: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    resume: str | Path | bool | None = None,
    log: Log | None = None,
    argv: list[str] | None = None,
) -> Trainer:
    """Resolve the configuration (new run, or the saved one when resuming) and make a Trainer.

    A new run refuses a run folder that already holds checkpoints. A resumed run takes its
    configuration from the checkpoint; options given again must agree with it, except
    :data:`RESUMABLE_KEYS` (e.g. ``--iters`` to extend a run).
    """
    from satvsr_cli.train.config import apply_sets, build_config, merge, read_config_file, set_key

    run_dir = Path(out)
    if resume:
        path = find_resume_checkpoint(run_dir, resume)
        ck = load_checkpoint(path)
        saved = from_dict(ck["config"])
        wanted = saved
        if config_file:
            values = read_config_file(config_file)
            if "recipe" in values and values["recipe"] != saved.recipe:
                check_resume_changes(saved, replace(saved, recipe=str(values["recipe"])))
            wanted = merge(wanted, {k: v for k, v in values.items() if k != "recipe"})
        if recipe_name and recipe_name != saved.recipe:
            check_resume_changes(saved, replace(saved, recipe=recipe_name))
        if model:
            wanted = replace(wanted, model=replace(wanted.model, name=model))
        for key, value in (overrides or {}).items():
            wanted = set_key(wanted, key, value)
        wanted = absolutize(apply_sets(wanted, sets))
        check_resume_changes(saved, wanted)
        return Trainer(wanted, run_dir, checkpoint=ck, checkpoint_path=path, log=log,
                       argv=argv)
    if dist_info().main and (list_checkpoints(run_dir) or (run_dir / CKPT_DIR / "best.pt").exists()):
        raise OutputError(f"{run_dir}: holds checkpoints of an earlier run; pass --resume to "
                          "continue it or choose another --out")
    cfg = build_config(model=model, recipe_name=recipe_name, config_file=config_file,
                       overrides=overrides, sets=sets)
    return Trainer(cfg, run_dir, log=log, argv=argv)


# --------------------------------------------------------------------------- export


def export_run(run_dir: str | Path, *, which: str = "final", log: Log | None = None) -> Path:
    """Write a run's EMA weights (or raw weights without EMA) as a satvsr weights entry.

    ``which="final"`` exports the latest checkpoint, ``"best"`` the best-validated one. The file
    is ``RUN_DIR/export/<network>.safetensors`` with its manifest (data, recipe, iterations,
    wall time, hardware and validation metrics).
    """
    from satvsr_cli.models import build_model
    from satvsr_cli.weights import save_weights

    run = Path(run_dir)
    if which == "best":
        path = run / CKPT_DIR / "best.pt"
        if not path.exists():
            raise WeightsError(f"{run}: no best.pt (the run had no validation data)")
    else:
        found = list_checkpoints(run)
        if not found:
            raise InputError(f"{run}: no checkpoint to export (expected {CKPT_DIR}/iter_*.pt)")
        path = found[-1]
    ck = load_checkpoint(path)
    cfg = from_dict(ck["config"])
    net = build_model(ck["network"], **ck["model_kwargs"])
    net.load_state_dict(ck["ema"] if ck.get("ema") is not None else ck["model"])
    net.eval()
    it = int(ck["iteration"])
    out = run / "export" / f"{ck['network']}.safetensors"
    recipe = {"recipe": cfg.recipe, "train": to_dict(cfg.train),
              "patch": cfg.data.patch, "temporal_padding": cfg.data.temporal_padding,
              "augment": {k: getattr(cfg.data, k) for k in ("vflip", "hflip", "rot180", "rot90",
                                                             "reverse")},
              "weights": "ema" if ck.get("ema") is not None else "raw"}
    sources = ck.get("data") or [to_dict(s) for s in cfg.data.sources]
    if any(s.get("kind") == "images" for s in sources):
        recipe["synth"] = to_dict(cfg.synth)
    data = {"sources": sources, "val": list(cfg.data.val),
            "synthetic": any(s.get("kind") == "images" for s in sources)}
    metrics = {"val": ck.get("val") or {}, "val_iteration": it if ck.get("val") else None,
               "val_max_frames": cfg.train.val_max_frames}
    extra = {"iterations": it, "wall_time_s": round(float(ck.get("wall_time_s", 0.0)), 1),
             "hardware": hardware(), "torch": str(torch.__version__),
             "world_size": ck.get("world_size", 1), "exported": which,
             "best": ck.get("best"), "checkpoint": path.name}
    if ck.get("init"):
        extra["init"] = ck["init"]  # the weights the run was fine-tuned from
    save_weights(net, out, network=ck["network"], config=dict(ck["model_kwargs"]), data=data,
                 recipe=recipe, metrics=metrics, extra=extra)
    if log is not None:
        log(f"exported {which} weights (iteration {it}) to {out}")
    return out


__all__ = [
    "CKPT_FORMAT",
    "EMA",
    "DistInfo",
    "TrainResult",
    "Trainer",
    "absolutize",
    "atomic_torch_save",
    "check_resume_changes",
    "dist_info",
    "export_run",
    "find_resume_checkpoint",
    "hardware",
    "list_checkpoints",
    "load_checkpoint",
    "load_init",
    "loss_fn",
    "lr_at",
    "prepare",
    "resolve",
    "rng_state",
    "set_rng_state",
]
