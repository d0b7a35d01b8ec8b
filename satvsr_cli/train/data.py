"""Training data: Jilin-layout clips and synthetic clips from still images, cached, mixed, batched.

Sources (``--data``, repeatable; ``kind=auto`` decides per path):

- **Jilin layout** (``jilin``): a folder holding ``GT/<clip>/<frame>`` (or ``train/GT/...``;
  an ``eval/`` split is never picked for training). Every frame is decoded once and cached in
  memory as uint8 (``data.cache="auto"`` switches to reading frames from disk per sample when
  the decoded frames would exceed ``data.cache_gib``). GT is cropped top-left to a multiple of
  4; ``LR4x`` frames are used when present (their size must be GT/4) and otherwise made by the
  MATLAB-exact bicubic ×1/4 (once at load; from disk, from the GT region, bit-identical). Every
  frame of every clip is a sample; its window takes neighbours by ``temporal_padding``
  (``centre``, as the papers).
- **Images** (``images``): a folder (searched recursively), a glob or one file of still images
  (PNG/JPEG/TIFF) or GeoTIFFs, turned into clips by :mod:`satvsr_cli.train.synth`. Loading:

  - GeoTIFF/TIFF through rasterio: bands ``bands`` (1-based; default the first three, or the
    only band replicated to RGB); PNG/JPEG through imageio (alpha dropped, grey replicated).
  - Values to uint8 (training data only; inference keeps the input's dtype): uint8 as is;
    ``stretch="percentile"`` (the ``auto`` choice for any other dtype) maps the per-band
    ``percentiles`` (default 1 %, 99 %) of the valid pixels to 0..255; ``stretch="range"``
    maps a fixed range from the dtype (0..65535 for uint16, 0..1 for floats) to 0..255.
  - Nodata (rasterio's dataset mask: nodata value, alpha or internal mask; NaN for floats) is
    tracked as a validity mask; a training region is only ever placed where the centre frame's
    region is entirely valid, and images with no such region are skipped with a warning.
  - ``gsd_factor`` > 1 downsamples image and mask with the MATLAB bicubic first (UC Merced
    0.3 m × 3 ≈ 1 m, Jilin-1's GSD). A source whose images are too small for ``data.patch``
    uses the largest LR patch (a multiple of ``data.patch_multiple``) that fits its smallest
    image; images too small even for an 8-pixel patch are skipped with a warning.

Sampling is **counter-based**: the samples of iteration ``it`` on rank ``r`` are a pure function
of ``(seed, it, r)``, so a resumed run draws exactly the batches an uninterrupted run would, with
no sampler state to save, and ranks never draw the same sample. With one source an "epoch" visits
every sample once in a seeded random order (the papers' protocol); with several, each sample's
source is drawn with probability ∝ ``weight`` (each source's samples uniformly, images ∝ area).
When the sources' patch sizes differ, the source is drawn once per batch instead of per sample.
Augmentations (three coin flips as the papers, optional 90° rotation and temporal reversal) are
applied identically to the LR window and the GT.
"""

from __future__ import annotations

import glob
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from satvsr_cli.engine.windows import frame_indices
from satvsr_cli.errors import InputError
from satvsr_cli.jilin import IMAGE_SUFFIXES, Clip, find_clips, natural_key
from satvsr_cli.resize import imresize
from satvsr_cli.train.config import DataConfig, RunConfig, SourceConfig, SynthConfig
from satvsr_cli.train.degrade import degrade_batch
from satvsr_cli.train.synth import max_patch_for, region_size, synth_window

U8 = npt.NDArray[np.uint8]
Log = Callable[[str], None]
MIN_SYNTH_PATCH = 8
_TRAIN_SPLITS = ("train", "training_set")
_EVAL_NAMES = {"eval", "test", "test_set", "val", "valid", "validation"}


def _noop(_: str) -> None:
    pass


def read_rgb(path: Path) -> U8:
    """Read an 8-bit image as ``(H, W, 3)`` uint8 (grey replicated, alpha dropped)."""
    from satvsr_cli.io.frames import read_rgb as read_frame  # the project's one frame reader

    return read_frame(path, dtypes=("uint8",))


def resolve_train_root(path: Path) -> Path:
    """The folder holding ``GT/`` for training: ``path`` itself or its train split, never eval."""
    if (path / "GT").is_dir():
        return path
    for split in _TRAIN_SPLITS:
        if (path / split / "GT").is_dir():
            return path / split
    raise InputError(
        f"{path}: no GT/ folder for training (expected PATH/GT/<clip>/<frame> or "
        "PATH/train/GT/...; evaluation splits are never picked automatically)"
    )


def detect_kind(path: str) -> str:
    """``jilin`` for a folder with ``GT/`` (or ``train/GT/``), else ``images``.

    Raises:
        InputError: for a dataset folder whose only GT is under another split (``eval/GT``).
    """
    p = Path(path)
    if p.is_dir() and ((p / "GT").is_dir() or any((p / s / "GT").is_dir() for s in _TRAIN_SPLITS)):
        return "jilin"
    if p.is_dir() and any((c / "GT").is_dir() for c in p.iterdir() if c.is_dir()):
        raise InputError(
            f"{path}: no GT/ folder for training, only other splits (e.g. eval/GT); pass the "
            "training split's folder (evaluation splits are never picked automatically)"
        )
    return "images"


def _is_eval_path(path: Path) -> bool:
    return any(part.lower() in _EVAL_NAMES for part in path.parts)


# --------------------------------------------------------------------------- real clips


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image from its header (no full decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: cannot read image ({str(exc).splitlines()[0]})") from None
    return h, w


def lr_from_gt_region(gt: U8, y: int, x: int, p: int) -> U8:
    """``imresize(gt, 1/4)[y:y+p, x:x+p]`` computed from a GT region only (bit-exact).

    The ×1/4 kernel reaches 8 GT pixels beyond an output pixel's footprint, and the full-frame
    resize clamps indices at the frame border; an edge-padded region with an 8-pixel margin
    therefore gives the same values.
    """
    m = 8
    rows = np.clip(np.arange(4 * y - m, 4 * (y + p) + m), 0, gt.shape[0] - 1)
    cols = np.clip(np.arange(4 * x - m, 4 * (x + p) + m), 0, gt.shape[1] - 1)
    region = gt[rows[:, None], cols[None, :]]
    return imresize(region, 0.25)[m // 4 : m // 4 + p, m // 4 : m // 4 + p]


class ClipSource:
    """Jilin-layout clips, decoded once into memory or read from disk per sample.

    In memory (``cache="memory"``, or ``"auto"`` when the decoded frames take at most
    ``cache_gib``): ``lr[c]`` is ``(N, h, w, 3)`` and ``gt[c]`` ``(N, 4h, 4w, 3)`` uint8. From
    disk, each sample decodes its 5 LR frames and one GT frame (or, without ``LR4x``, 5 GT
    frames whose LR crop is computed exactly from the GT region): slower, for datasets such as
    the full Jilin-189 (≈ 25 GB decoded); use ``--workers`` then.
    """

    kind = "jilin"

    def __init__(self, src: SourceConfig, frames: int, log: Log = _noop, *,
                 cache: str = "auto", cache_gib: float = 4.0) -> None:
        root = resolve_train_root(Path(src.path))
        if _is_eval_path(root):
            log(f"warning: training source {root} looks like an evaluation split")
        clips: list[Clip] = find_clips(root, min_frames=frames)
        self.path = str(root)
        self.weight = src.weight
        self.clips = clips
        self.names: list[str] = [c.name for c in clips]
        self.sizes: list[tuple[int, int]] = []  # LR (h, w) per clip
        total = 0
        for clip in clips:
            h, w = image_size(clip.gt[0])
            h4, w4 = (h // 4) * 4, (w // 4) * 4
            if h4 == 0 or w4 == 0:
                raise InputError(f"{root}/GT/{clip.name}: frames smaller than 4×4")
            if clip.lr is not None:
                self._check_lr(root, clip.name, image_size(clip.lr[0]), h4, w4)
            self.sizes.append((h4 // 4, w4 // 4))
            total += len(clip) * h4 * w4 * 3 * 17 // 16
        self.in_memory = cache == "memory" or (cache == "auto" and total <= cache_gib * 2**30)
        self.lr: list[U8] = []
        self.gt: list[U8] = []
        made_lr = 0
        if self.in_memory:
            for clip, (lh, lw) in zip(clips, self.sizes, strict=True):
                gt = np.stack([self._read_gt(root, clip, p, lh, lw) for p in clip.gt])
                if clip.lr is not None:
                    lr = np.stack([read_rgb(p) for p in clip.lr])
                    self._check_lr(root, clip.name, lr.shape[1:3], 4 * lh, 4 * lw)
                else:
                    lr = np.stack([imresize(f, 0.25) for f in gt])
                    made_lr += len(gt)
                self.gt.append(gt)
                self.lr.append(np.ascontiguousarray(lr))
        self.items: list[tuple[int, int]] = [
            (c, t) for c, clip in enumerate(clips) for t in range(len(clip))
        ]
        self.max_patch = min(min(hw) for hw in self.sizes)
        self.patch = 0
        n = len(self.items)
        extra = f", LR made for {made_lr} frames" if made_lr else ""
        where = "in memory" if self.in_memory else (
            f"read from disk per sample ({total / 2**30:.1f} GiB decoded > {cache_gib:g} GiB)")
        log(f"{root}: {len(clips)} clips, {n} frames{extra}, {where}")

    @staticmethod
    def _check_lr(root: Path, name: str, lr_hw: tuple[int, ...], h4: int, w4: int) -> None:
        if tuple(lr_hw) != (h4 // 4, w4 // 4):
            raise InputError(
                f"{root}/LR4x/{name}: GT/LR size mismatch: LR is {lr_hw[1]}×{lr_hw[0]}, "
                f"GT {w4}×{h4} (cropped to a multiple of 4) needs {w4 // 4}×{h4 // 4}"
            )

    @staticmethod
    def _read_gt(root: Path, clip: Clip, path: Path, lh: int, lw: int) -> U8:
        f = read_rgb(path)
        if (f.shape[0] // 4, f.shape[1] // 4) != (lh, lw):
            raise InputError(f"{path}: frame size {f.shape[1]}×{f.shape[0]} differs from the "
                             f"other frames of {root}/GT/{clip.name}")
        return np.ascontiguousarray(f[: 4 * lh, : 4 * lw])

    def __len__(self) -> int:
        return len(self.items)

    def set_patch(self, patch: int, multiple: int) -> None:
        """Use ``patch``; clips smaller than it are an error (real crops are never padded)."""
        if patch > self.max_patch:
            raise InputError(
                f"{self.path}: LR frames of {self.max_patch} px are smaller than the LR patch "
                f"{patch}; lower --patch"
            )
        self.patch = patch

    def pick(self, rng: np.random.Generator) -> int:
        """A uniformly random item."""
        return int(rng.integers(len(self.items)))

    def window(
        self, item: int, rng: np.random.Generator, frames: int, cfg: DataConfig, synth: SynthConfig
    ) -> tuple[U8, U8]:
        """LR window ``(T, p, p, 3)`` and GT ``(4p, 4p, 3)``; one crop position for all frames."""
        c, t = self.items[item]
        lh, lw = self.sizes[c]
        idx = frame_indices(t, len(self.clips[c]), frames, cfg.temporal_padding)
        p = self.patch
        y = int(rng.integers(0, lh - p + 1))
        x = int(rng.integers(0, lw - p + 1))
        if self.in_memory:
            lr = self.lr[c][idx, y : y + p, x : x + p]
            gt = self.gt[c][t, 4 * y : 4 * (y + p), 4 * x : 4 * (x + p)]
            return lr, gt
        clip, root = self.clips[c], Path(self.path)
        gts = {j: self._read_gt(root, clip, clip.gt[j], lh, lw)
               for j in (set(idx) | {t} if clip.lr is None else {t})}
        gt = gts[t][4 * y : 4 * (y + p), 4 * x : 4 * (x + p)]
        if clip.lr is None:
            lr = np.stack([lr_from_gt_region(gts[j], y, x, p) for j in idx])
        else:
            lrs = []
            for j in idx:
                f = read_rgb(clip.lr[j])
                self._check_lr(root, clip.name, f.shape[:2], 4 * lh, 4 * lw)
                lrs.append(f[y : y + p, x : x + p])
            lr = np.stack(lrs)
        return lr, gt

    def describe(self) -> dict[str, Any]:
        """What this source contributed, for logs and manifests."""
        return {"kind": self.kind, "path": self.path, "weight": self.weight,
                "clips": len(self.names), "frames": len(self.items), "patch": self.patch,
                "in_memory": self.in_memory}


# --------------------------------------------------------------------------- still images


def list_image_files(spec: str) -> list[Path]:
    """Image files named by a file, a folder (recursive) or a glob pattern, in natural order."""
    if any(ch in spec for ch in "*?["):
        files = [Path(p) for p in glob.glob(spec, recursive=True)]
    else:
        p = Path(spec)
        if p.is_file():
            return [p]
        if not p.is_dir():
            raise InputError(f"{spec}: no such file or folder")
        files = [f for f in p.rglob("*") if f.is_file()]
    files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda f: natural_key(str(f)))


def to_uint8(
    bands: npt.NDArray[Any], valid: npt.NDArray[np.bool_], stretch: str,
    percentiles: tuple[float, float],
) -> U8:
    """``(H, W, C)`` values of any dtype → uint8 by ``stretch`` (see the module docstring)."""
    if bands.dtype == np.uint8 and stretch in ("auto", "range"):
        return np.ascontiguousarray(bands)
    x = bands.astype(np.float64)
    if stretch == "range":
        if np.issubdtype(bands.dtype, np.integer):
            info = np.iinfo(bands.dtype)
            lo, hi = float(max(info.min, 0)), float(info.max)
        else:
            lo, hi = 0.0, 1.0
        out = (x - lo) / (hi - lo)
    else:
        out = np.empty_like(x)
        for b in range(x.shape[2]):
            vals = x[..., b][valid]
            if vals.size == 0:
                out[..., b] = 0.0
                continue
            lo, hi = np.percentile(vals, percentiles)
            out[..., b] = (x[..., b] - lo) / max(hi - lo, 1e-12)
    out = np.nan_to_num(out, nan=0.0)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def read_still(
    path: Path, bands: tuple[int, ...] | None, stretch: str, percentiles: tuple[float, float]
) -> tuple[U8, npt.NDArray[np.bool_] | None]:
    """One still image as ``(H, W, 3)`` uint8 and its validity mask (``None`` if all valid)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as ds:
                    count = ds.count
                    idx = list(bands) if bands else ([1, 2, 3] if count >= 3 else [1])
                    if max(idx) > count:
                        raise InputError(f"{path}: has {count} bands; cannot take bands {idx}")
                    data = np.moveaxis(ds.read(idx), 0, -1)
                    mask = ds.dataset_mask() > 0
        except RasterioIOError as exc:
            raise InputError(f"{path}: cannot read raster ({str(exc).splitlines()[0]})") from None
    else:
        import imageio.v3 as iio

        try:
            data = np.asarray(iio.imread(path))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad input file
            raise InputError(f"{path}: cannot read image ({str(exc).splitlines()[0]})") from None
        if data.ndim == 2:
            data = data[..., None]
        mask = np.ones(data.shape[:2], dtype=bool)
        if data.shape[2] in (2, 4):
            mask = data[..., -1] > 0
            data = data[..., :-1]
        if bands:
            if max(bands) > data.shape[2]:
                raise InputError(f"{path}: has {data.shape[2]} bands; cannot take {list(bands)}")
            data = data[..., [b - 1 for b in bands]]
        else:
            data = data[..., :3] if data.shape[2] >= 3 else data[..., :1]
    if data.ndim != 3 or data.shape[0] == 0 or data.shape[1] == 0:
        raise InputError(f"{path}: empty image")
    if np.issubdtype(data.dtype, np.floating):
        mask = mask & np.all(np.isfinite(data), axis=2)
    img = to_uint8(data, mask, stretch, percentiles)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 2:
        img = np.concatenate([img, img[..., :1]], axis=2)
    img = np.ascontiguousarray(img[..., :3])
    return img, (None if mask.all() else mask)


@dataclass
class _Still:
    path: Path
    img: U8
    mask: npt.NDArray[np.bool_] | None
    positions: npt.NDArray[np.intp] | None = None  # flat indices of valid region origins


class ImageSource:
    """Still images cached in memory (uint8, GSD-downsampled) for :func:`synth_window`."""

    kind = "images"

    def __init__(self, src: SourceConfig, synth: SynthConfig, log: Log = _noop) -> None:
        files = list_image_files(src.path)
        if not files:
            raise InputError(f"{src.path}: no images found (png, jpg, tif, bmp)")
        self.path = src.path
        self.weight = src.weight
        self.gsd_factor = src.gsd_factor if src.gsd_factor is not None else synth.gsd_factor
        bands = src.bands if src.bands is not None else synth.bands
        stretch = src.stretch if src.stretch is not None else synth.stretch
        self.bands, self.stretch = bands, stretch
        self.stills: list[_Still] = []
        for f in files:
            img, mask = read_still(f, bands, stretch, synth.percentiles)
            if self.gsd_factor > 1.0:
                img = imresize(img, 1.0 / self.gsd_factor)
                if mask is not None:
                    m = imresize(mask.astype(np.float32), 1.0 / self.gsd_factor) > 0.999
                    mask = None if m.all() else m
            self.stills.append(_Still(f, img, mask))
        self.patch = 0
        self.probs = np.ones(len(self.stills)) / len(self.stills)
        log(f"{src.path}: {len(self.stills)} images (gsd factor {self.gsd_factor:g}, "
            f"stretch {stretch})")
        self._log = log

    def __len__(self) -> int:
        return len(self.stills)

    @property
    def max_patch(self) -> int:
        """The largest LR patch that fits the largest image."""
        return max(max_patch_for(s.img.shape[0], s.img.shape[1], 1) for s in self.stills)

    def set_patch(self, patch: int, multiple: int) -> None:
        """Fit ``patch`` to the images: shrink it to the smallest usable one, skip tiny ones."""
        fits = [max_patch_for(s.img.shape[0], s.img.shape[1], multiple) for s in self.stills]
        keep = [i for i, f in enumerate(fits) if f >= MIN_SYNTH_PATCH]
        if len(keep) < len(self.stills):
            self._log(f"warning: {self.path}: skipped {len(self.stills) - len(keep)} images "
                      f"too small for an {MIN_SYNTH_PATCH}-pixel LR patch")
        if not keep:
            raise InputError(f"{self.path}: every image is too small to synthesise clips "
                             f"(gsd factor {self.gsd_factor:g})")
        self.stills = [self.stills[i] for i in keep]
        p = min(patch, min(fits[i] for i in keep))
        if p < patch:
            self._log(f"{self.path}: LR patch {p} (images too small for {patch})")
        size = region_size(p)
        usable = []
        for s in self.stills:
            if s.mask is None:
                usable.append(s)
                continue
            ii = np.pad(np.cumsum(np.cumsum((~s.mask).astype(np.int64), 0), 1), ((1, 0), (1, 0)))
            bad = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
            ok = np.flatnonzero(bad == 0)
            if ok.size:
                s.positions = ok
                usable.append(s)
        if len(usable) < len(self.stills):
            self._log(f"warning: {self.path}: skipped {len(self.stills) - len(usable)} images "
                      "without a nodata-free region")
        if not usable:
            raise InputError(f"{self.path}: no image has a nodata-free {size}×{size} region")
        self.stills = usable
        self.patch = p
        area = np.array([float(s.img.shape[0] * s.img.shape[1]) if s.mask is None
                         else float(s.mask.sum()) for s in self.stills])
        self.probs = area / area.sum()

    def pick(self, rng: np.random.Generator) -> int:
        """A random image, with probability ∝ its (valid) area."""
        return int(rng.choice(len(self.stills), p=self.probs))

    def window(
        self, item: int, rng: np.random.Generator, frames: int, cfg: DataConfig, synth: SynthConfig
    ) -> tuple[U8, U8]:
        """A synthetic LR window and its GT from image ``item``."""
        s = self.stills[item]
        top = left = None
        if s.positions is not None:
            size = region_size(self.patch)
            flat = int(s.positions[int(rng.integers(s.positions.size))])
            top, left = divmod(flat, s.img.shape[1] - size + 1)
        lr, gt, _ = synth_window(s.img, rng, patch=self.patch, frames=frames, cfg=synth,
                                 top=top, left=left)
        return lr, gt

    def describe(self) -> dict[str, Any]:
        """What this source contributed, for logs and manifests."""
        return {"kind": self.kind, "path": self.path, "weight": self.weight,
                "images": len(self.stills), "gsd_factor": self.gsd_factor,
                "bands": list(self.bands) if self.bands else None, "stretch": self.stretch,
                "patch": self.patch, "synthetic": True}


Source = ClipSource | ImageSource


# --------------------------------------------------------------------------- batches


def augment(lr: U8, gt: U8, rng: np.random.Generator, cfg: DataConfig) -> tuple[U8, U8]:
    """The same random flips/rotations on the LR window ``(T, h, w, C)`` and GT ``(H, W, C)``."""
    coins = rng.random(5) < 0.5  # always five draws, so the stream does not depend on options
    if cfg.vflip and coins[0]:
        lr, gt = lr[:, ::-1], gt[::-1]
    if cfg.hflip and coins[1]:
        lr, gt = lr[:, :, ::-1], gt[:, ::-1]
    if cfg.rot180 and coins[2]:
        lr, gt = lr[:, ::-1, ::-1], gt[::-1, ::-1]
    if cfg.rot90 and coins[3]:
        lr, gt = lr.transpose(0, 2, 1, 3), gt.transpose(1, 0, 2)
    if cfg.reverse and coins[4]:
        lr = lr[::-1]
    return lr, gt


class TrainData:
    """All training sources, and the batch of any (iteration, rank) as a pure function of both."""

    def __init__(self, cfg: RunConfig, frames: int = 5, *, log: Log = _noop,
                 world_size: int = 1) -> None:
        if not cfg.data.sources:
            raise InputError("no training data: pass --data DIR (repeatable)")
        self.cfg = cfg
        self.frames = frames
        self.world_size = world_size
        self.sources: list[Source] = []
        for src in cfg.data.sources:
            kind = detect_kind(src.path) if src.kind == "auto" else src.kind
            if kind == "jilin":
                self.sources.append(ClipSource(src, frames, log, cache=cfg.data.cache,
                                               cache_gib=cfg.data.cache_gib))
            else:
                p = Path(src.path)
                if _is_eval_path(p):
                    log(f"warning: training source {p} looks like an evaluation split")
                self.sources.append(ImageSource(src, cfg.synth, log))
        for s in self.sources:
            s.set_patch(cfg.data.patch, cfg.data.patch_multiple)
        w = np.array([s.weight for s in self.sources], dtype=np.float64)
        self.weights = w / w.sum()
        self.per_batch_source = len({s.patch for s in self.sources}) > 1
        self._perm_cache: tuple[int, npt.NDArray[np.intp]] | None = None

    @property
    def n_samples(self) -> int:
        """Samples in one epoch: every frame of every clip plus every image, once."""
        return sum(len(s) for s in self.sources)

    def iters_per_epoch(self, batch: int) -> int:
        """Iterations that visit :attr:`n_samples` samples across all processes."""
        return max(1, math.ceil(self.n_samples / (batch * self.world_size)))

    def _epoch_perm(self, epoch: int) -> npt.NDArray[np.intp]:
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            rng = np.random.default_rng([self.cfg.train.seed, 0xE90C, epoch])
            self._perm_cache = (epoch, rng.permutation(len(self.sources[0])))
        return self._perm_cache[1]

    def samples(self, it: int, rank: int = 0) -> list[tuple[int, int, np.random.Generator]]:
        """``(source, item, rng)`` for each sample of iteration ``it`` on ``rank``."""
        batch = self.cfg.train.batch
        rng = np.random.default_rng([self.cfg.train.seed, 0x5A3F, it, rank])
        out = []
        if len(self.sources) == 1:
            n = len(self.sources[0])
            for b in range(batch):
                k = (it * self.world_size + rank) * batch + b
                epoch, pos = divmod(k, n)
                out.append((0, int(self._epoch_perm(epoch)[pos]), rng))
            return out
        fixed = int(rng.choice(len(self.sources), p=self.weights)) if self.per_batch_source else -1
        for _ in range(batch):
            s = fixed if fixed >= 0 else int(rng.choice(len(self.sources), p=self.weights))
            out.append((s, self.sources[s].pick(rng), rng))
        return out

    def batch_arrays(self, it: int, rank: int = 0) -> tuple[U8, U8]:
        """The uint8 batch of iteration ``it``: LR ``(B, T, p, p, 3)``, GT ``(B, 4p, 4p, 3)``."""
        lrs, gts, still = [], [], []
        for s, item, rng in self.samples(it, rank):
            src = self.sources[s]
            lr, gt = src.window(item, rng, self.frames, self.cfg.data, self.cfg.synth)
            lr, gt = augment(lr, gt, rng, self.cfg.data)
            lrs.append(lr)
            gts.append(gt)
            still.append(isinstance(src, ImageSource))
        lr_b = np.stack(lrs)
        if self.cfg.degradation.enabled:
            # a stream of its own, so the clean windows are the same with and without it
            rng = np.random.default_rng([self.cfg.train.seed, 0xDE6, it, rank])
            lr_b, _ = degrade_batch(lr_b, still, rng, self.cfg.degradation)
        return lr_b, np.stack(gts)

    def batch(self, it: int, rank: int = 0) -> tuple[Any, Any]:
        """The batch of iteration ``it`` as float tensors in [0, 1]: ``(B,T,3,p,p)``, ``(B,3,4p,4p)``."""
        import torch

        lr, gt = self.batch_arrays(it, rank)
        lr_t = torch.from_numpy(lr).permute(0, 1, 4, 2, 3).float().div_(255.0)
        gt_t = torch.from_numpy(gt).permute(0, 3, 1, 2).float().div_(255.0)
        return lr_t.contiguous(), gt_t.contiguous()

    def describe(self) -> list[dict[str, Any]]:
        """One dict per source, with its mixing probability."""
        return [{**s.describe(), "probability": round(float(p), 4)}
                for s, p in zip(self.sources, self.weights, strict=True)]


def batch_stream(
    data: TrainData, start: int, stop: int, rank: int, num_workers: int
) -> Iterator[tuple[Any, Any]]:
    """Batches for iterations ``start..stop-1``, built in-process or by ``num_workers`` workers.

    Workers take iterations round-robin and the DataLoader returns them in order, so the
    stream is identical for any ``num_workers``.
    """
    if num_workers <= 0:
        for it in range(start, stop):
            yield data.batch(it, rank)
        return
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    class _Stream(IterableDataset):
        def __iter__(self) -> Iterator[tuple[Any, Any]]:
            info = get_worker_info()
            wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
            for it in range(start + wid, stop, nw):
                yield data.batch(it, rank)

    def _init(_: int) -> None:
        torch.set_num_threads(1)

    loader = DataLoader(_Stream(), batch_size=None, num_workers=num_workers,
                        worker_init_fn=_init, prefetch_factor=2)
    yield from loader


__all__ = [
    "ClipSource",
    "ImageSource",
    "TrainData",
    "augment",
    "batch_stream",
    "detect_kind",
    "list_image_files",
    "read_rgb",
    "read_still",
    "resolve_train_root",
    "to_uint8",
]
