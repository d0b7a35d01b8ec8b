"""The built wheel carries the shipped weights: install it in a fresh venv, upscale from elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools")
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    # build from a copy of the sources so that the repository's own build/ is not touched
    src = build / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*_cache", "tests"))
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-q", "-w", str(out), str(src)], build, dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("satvsr-*.whl")
    return whl


def test_wheel_contains_the_shipped_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for wid in ("lgtd_small.v1", "lgtd_small.v2", "lgtd_base.v1", "msdtgp_small.v1"):
        assert f"satvsr_cli/weights_data/{wid}.safetensors" in names
        assert f"satvsr_cli/weights_data/{wid}.json" in names
    assert "satvsr_cli/weights_data/DEFAULT" in names
    assert not any(n.startswith(("tests/", "weights/")) for n in names)


def test_wheel_installs_and_upscales_from_another_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, dict(os.environ)).stdout.strip())
    # the dependencies (torch, ...) come from the test environment, appended after the venv's own
    # site-packages; a plain path line does not run the editable finder of this checkout
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SATVSR_WEIGHTS_DIR", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    r = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
              "-q", str(wheel)], tmp_path, env)
    assert r.returncode == 0, r.stderr[-2000:]

    work = tmp_path / "elsewhere"
    frames = work / "clip"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(
            frames / f"{i:03d}.png")
    r = _run([str(py), "-c", "import satvsr_cli, sys; print(satvsr_cli.__file__)"], work, env)
    assert r.returncode == 0 and str(site) in r.stdout, (r.stdout, r.stderr)
    satvsr = venv / "bin" / "satvsr"
    r = _run([str(satvsr), "upscale", "clip", "-o", "out", "--quiet"], work, env)
    assert r.returncode == 0, r.stderr[-2000:]
    outs = sorted((work / "out").glob("*.png"))
    assert len(outs) == 3
    assert Image.open(outs[0]).size == (64, 48)
    r = _run([str(satvsr), "models", "--json", "--no-macs"], work, env)
    assert r.returncode == 0 and "lgtd_small.v1" in r.stdout, r.stderr[-2000:]
