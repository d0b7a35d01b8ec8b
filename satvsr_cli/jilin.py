"""Discovery of clips laid out as Jilin-189: ``ROOT/{GT,LR4x}/<clip>/<frame>.png``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satvsr_cli.errors import InputError
from satvsr_cli.io.base import IMAGE_SUFFIXES, natural_key

__all__ = ["IMAGE_SUFFIXES", "Clip", "find_clips", "list_images", "natural_key", "resolve_root"]
_SPLIT_NAMES = ("eval", "test_set", "test", "train", "training_set")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class Clip:
    """One clip: its GT frames and, when present, the matching LR frames (same names)."""

    name: str
    gt: tuple[Path, ...]
    lr: tuple[Path, ...] | None

    def __len__(self) -> int:
        return len(self.gt)


def resolve_root(root: Path) -> Path:
    """Return the folder that holds ``GT/`` under ``root`` (accepts ``root/eval``, ``root/test_set``…)."""
    if (root / "GT").is_dir():
        return root
    for split in _SPLIT_NAMES:
        if (root / split / "GT").is_dir():
            return root / split
    raise InputError(f"{root}: no GT/ folder (expected ROOT/GT/<clip>/<frame>.png, Jilin-189 layout)")


def find_clips(root: str | Path, *, require_lr: bool = False, min_frames: int = 1) -> list[Clip]:
    """Find every clip under a Jilin-189 style ``root``.

    Args:
        root: the dataset folder (``ROOT/GT``, or ``ROOT/eval/GT``, ``ROOT/test_set/GT``...).
        require_lr: raise when a clip has no ``LR4x`` folder (otherwise ``Clip.lr`` is ``None``).
        min_frames: raise when a clip has fewer frames than this.

    Raises:
        InputError: missing folders, empty clips, LR/GT name mismatches, too-short clips.
    """
    base = resolve_root(Path(root))
    gt_root, lr_root = base / "GT", base / "LR4x"
    clip_dirs = sorted((d for d in gt_root.iterdir() if d.is_dir()), key=lambda d: natural_key(d.name))
    if not clip_dirs:
        raise InputError(f"{gt_root}: no clip folders")
    clips: list[Clip] = []
    for d in clip_dirs:
        gt = list_images(d)
        if not gt:
            raise InputError(f"{d}: no frames")
        if len(gt) < min_frames:
            raise InputError(f"{d}: {len(gt)} frames, fewer than the {min_frames} needed")
        lr_dir = lr_root / d.name
        lr: tuple[Path, ...] | None = None
        if lr_dir.is_dir():
            lr_files = list_images(lr_dir)
            if [p.name for p in lr_files] != [p.name for p in gt]:
                raise InputError(f"{lr_dir}: LR frame names do not match {d}")
            lr = tuple(lr_files)
        elif require_lr:
            raise InputError(f"{lr_dir}: missing LR4x clip")
        clips.append(Clip(name=d.name, gt=tuple(gt), lr=lr))
    return clips
