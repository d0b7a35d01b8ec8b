from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from satvsr_cli.errors import InputError
from satvsr_cli.jilin import find_clips, natural_key


def _write(root: Path, clip: str, names, size=(8, 8), lr=True):
    for sub, s in (("GT", 4), ("LR4x", 1)):
        if sub == "LR4x" and not lr:
            continue
        d = root / sub / clip
        d.mkdir(parents=True, exist_ok=True)
        for n in names:
            iio.imwrite(d / n, np.zeros((size[0] * s, size[1] * s, 3), np.uint8))


def test_finds_clips_in_eval_subfolder_with_natural_order(tmp_path):
    _write(tmp_path / "eval", "002", ["00000010.png", "00000002.png", "00000001.png"])
    _write(tmp_path / "eval", "001", ["000.png", "001.png"])
    clips = find_clips(tmp_path)
    assert [c.name for c in clips] == ["001", "002"]
    assert [p.name for p in clips[1].gt] == ["00000001.png", "00000002.png", "00000010.png"]
    assert clips[0].lr is not None and len(clips[0]) == 2


def test_gt_only_and_errors(tmp_path):
    _write(tmp_path, "000", ["000.png", "001.png"], lr=False)
    assert find_clips(tmp_path)[0].lr is None
    with pytest.raises(InputError, match="missing LR4x"):
        find_clips(tmp_path, require_lr=True)
    with pytest.raises(InputError, match="fewer than the 5"):
        find_clips(tmp_path, min_frames=5)
    with pytest.raises(InputError, match="no GT"):
        find_clips(tmp_path / "nothing")


def test_lr_name_mismatch(tmp_path):
    _write(tmp_path, "000", ["000.png", "001.png"])
    (tmp_path / "LR4x" / "000" / "001.png").unlink()
    with pytest.raises(InputError, match="do not match"):
        find_clips(tmp_path)


def test_natural_key():
    assert sorted(["f10", "f2", "F1"], key=natural_key) == ["F1", "f2", "f10"]
