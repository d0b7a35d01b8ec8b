"""`satvsr upscale` over 2 CPU processes (torchrun, gloo): every output kind equals the
single-process output, many inputs, and a rank killed mid-run."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS

from satvsr_cli.engine.distributed import (
    DistEnv,
    dist_env,
    part_path,
    split_frames,
    strip_option,
    threads_per_rank,
)
from satvsr_cli.models import build_model, tiny_overrides
from satvsr_cli.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


# ------------------------------------------------------------------------------------------
# pure helpers
# ------------------------------------------------------------------------------------------


def test_split_frames_contiguous_aligned_and_complete():
    assert split_frames(0, 11, 2) == [(0, 6), (6, 11)]
    assert split_frames(3, 20, 3, align=4) == [(3, 11), (11, 19), (19, 20)]
    # fewer chunks than ranks: the last ranks get nothing, rank 0 always has frames
    assert split_frames(0, 2, 4, align=3) == [(0, 2), (2, 2), (2, 2), (2, 2)]
    for start, end, world, align in [(0, 100, 7, 6), (5, 6, 2, 1), (0, 37, 4, 5)]:
        ranges = split_frames(start, end, world, align)
        assert ranges[0][0] == start and ranges[-1][1] == end
        assert all(a == b0 for (_, a), (b0, _) in itertools.pairwise(ranges))
        assert all((a - start) % align == 0 for a, b in ranges if a < b)


def test_environment_threads_and_names(monkeypatch):
    env = dist_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
                    "TORCHELASTIC_RESTART_COUNT": "2"})
    assert env == DistEnv(3, 1, 4, 2, 2) and env.active
    assert not dist_env({}).active
    monkeypatch.delenv("SATVSR_THREADS", raising=False)
    assert threads_per_rank(env, cores=16) == 8  # no oversubscription
    assert threads_per_rank(DistEnv(0, 0, 8, 8), cores=2) == 1
    monkeypatch.setenv("SATVSR_THREADS", "3")
    assert threads_per_rank(env, cores=16) == 3
    assert part_path(Path("o/x.mp4"), "video", 0, 6) == Path("o/x.mp4.parts/part-000000-000006.mp4")
    assert part_path(Path("o/f"), "frames", 6, 9) == Path("o/f.parts/part-000006-000009")
    assert strip_option(["upscale", "a", "--nproc", "2", "--nproc=3", "-o", "b"], "--nproc") == [
        "upscale", "a", "-o", "b"]


# ------------------------------------------------------------------------------------------
# 2 processes against 1
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    net = build_model("lgtd_small", **tiny_overrides("lgtd_small"))
    weights = save_weights(net, d / "tiny.safetensors", network="lgtd_small",
                           config=tiny_overrides("lgtd_small"), data={}, recipe={}, metrics={})
    video = d / "in.mp4"  # 11 frames at 30000/1001 fps with an AAC sound track
    subprocess.run([
        FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
        "testsrc2=size=16x12:rate=30000/1001:duration=0.5", "-f", "lavfi", "-i",
        "sine=frequency=440:duration=0.5", "-frames:v", "11", "-c:v", "libx264", "-crf", "0",
        "-pix_fmt", "yuv444p", "-c:a", "aac", "-shortest", str(video)], check=True)
    geo = d / "geo"
    geo.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        arr = rng.integers(100, 4000, (3, 12, 16)).astype("uint16")
        arr[:, :2, :3] = 0
        with rasterio.open(geo / f"t{i:02d}.tif", "w", driver="GTiff", width=16, height=12,
                           count=3, dtype="uint16", crs=CRS.from_epsg(32633),
                           transform=Affine(10, 0, 500000, 0, -10, 4000000), nodata=0) as ds:
            ds.write(arr)
            ds.update_tags(SATVSR_VALUE_RANGE="0,4095")
    return {"dir": d, "weights": weights, "video": video, "geo": geo}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", SATVSR_THREADS="1", SATVSR_WEIGHTS_DIR=str(ROOT / "no-such"))
    return env


def _single(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "satvsr_cli", "upscale", *args],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300,
                          check=False)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "--monitor-interval", "0.5"]


def _torchrun(args: list[str], extra: list[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TORCHRUN, *extra, "-m", "satvsr_cli", "upscale", *args],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300,
                          check=False)


_CLOCK = re.compile(rb"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d")


def _bytes(p: Path) -> bytes:
    """The file's bytes, a GeoTIFF's TIFFTAG_DATETIME (wall clock, same length) neutralised."""
    data = p.read_bytes()
    return _CLOCK.sub(b"2000:01:01 00:00:00", data) if p.suffix == ".tif" else data


def _tree(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": _bytes(path)}
    return {p.relative_to(path).as_posix(): _bytes(p) for p in sorted(path.rglob("*"))
            if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    """Temporary files and unfinished job records (the record of a complete job stays)."""
    def complete(p: Path) -> bool:
        return json.loads(p.read_text()).get("state") == "complete"

    return sorted(p.name for p in folder.iterdir()
                  if p.name.endswith((".partial", ".parts", ".satvsr.lock"))
                  or (p.name.endswith(".satvsr.json") and not complete(p)))


@pytest.mark.parametrize("kind", ["frames", "video", "geotiff-frames", "geotiff-stack"])
def test_two_processes_equal_one(data, tmp_path, kind):
    w = ["-w", str(data["weights"]), "--tile", "0", "--progress", "json"]
    if kind == "frames":
        src, name, extra = data["video"], "out", []
    elif kind == "video":
        src, name, extra = data["video"], "out.mp4", ["--segment-frames", "3", "--preset",
                                                      "ultrafast"]
    elif kind == "geotiff-frames":
        src, name, extra = data["geo"], "out", ["--start", "1"]
    else:
        src, name, extra = data["geo"], "out.tif", ["--cog"]
    ref = _single([str(src), "-o", str(tmp_path / ("ref_" + name)), *w, *extra])
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / name
    if kind == "geotiff-frames":  # `satvsr upscale --nproc 2` starts the same launcher
        p = subprocess.run([sys.executable, "-m", "satvsr_cli", "upscale", str(src), "-o",
                            str(out), *w, *extra, "--nproc", "2"], capture_output=True,
                           text=True, env=_env(), cwd=ROOT, timeout=300, check=False)
    else:
        p = _torchrun([str(src), "-o", str(out), *w, *extra])
    assert p.returncode == 0, p.stderr[-3000:]
    assert _tree(out) == _tree(tmp_path / ("ref_" + name))
    assert _leftovers(tmp_path) == []
    # one progress view and one summary (rank 0), the events carry the rank
    events = [json.loads(ln) for ln in p.stderr.splitlines() if ln.startswith("{")]
    frames = [e for e in events if e["event"] == "frame"]
    assert frames and all(e["rank"] == 0 for e in events)
    total = 4 if kind == "geotiff-frames" else (5 if kind == "geotiff-stack" else 11)
    assert frames[-1]["done"] == frames[-1]["total"] == total, frames[-3:]
    summaries = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["frames_total"] == total
    assert summaries[0]["stats"]["ranks"] == 2
    if kind == "video":
        from satvsr_cli.io.video import probe_video

        info = probe_video(out)
        assert info.n_frames == 11 and info.fps == Fraction(30000, 1001)
        assert info.audio_codec == "aac"


def test_refuses_existing_and_resumes_parts(data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    w = ["-w", str(data["weights"]), "--tile", "0", "--progress", "none"]
    p = _torchrun([str(data["video"]), "-o", str(out), *w])
    assert p.returncode != 0 and p.stderr.count("error: ") == 1, p.stderr[-2000:]
    assert "already exists" in p.stderr and "Traceback" not in p.stderr.split("error:")[0]


def test_a_rank_killed_mid_run_is_restarted_and_the_result_is_identical(data, tmp_path):
    w = ["-w", str(data["weights"]), "--tile", "0", "--segment-frames", "2", "--preset",
         "ultrafast", "--progress", "json"]
    ref = _single([str(data["video"]), "-o", str(tmp_path / "ref.mp4"), *w])
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out.mp4"
    env = {**_env(), "SATVSR_TEST_SIGKILL": "1:3"}  # rank 1 SIGKILLs itself after 3 frames
    p = subprocess.run([*TORCHRUN, "--max-restarts", "1", "-m", "satvsr_cli", "upscale",
                        str(data["video"]), "-o", str(out), *w], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "exitcode: -9" in p.stderr  # the launcher saw the worker die (and restarted it)
    assert out.read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    assert _leftovers(tmp_path) == []
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["frames_total"] == 11 and summary["frames_resumed"] >= 2


def test_ctrl_c_stops_every_rank_and_resume_finishes(data, tmp_path):
    w = ["-w", str(data["weights"]), "--tile", "0", "--progress", "json"]
    out = tmp_path / "out"
    proc = subprocess.Popen([*TORCHRUN, "-m", "satvsr_cli", "upscale", str(data["video"]), "-o",
                             str(out), *w], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env={**_env(), "SATVSR_TEST_DELAY": "0.3"}, cwd=ROOT,
                            start_new_session=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if '"event": "frame"' in line:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the launcher and every rank
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) != 0
    assert "error: interrupted" in rest, rest[-3000:]
    assert not out.exists() and (tmp_path / "out.parts").is_dir()
    again = _torchrun([str(data["video"]), "-o", str(out), *w, "--resume"])
    assert again.returncode == 0, again.stderr[-3000:]
    ref = _single([str(data["video"]), "-o", str(tmp_path / "ref"), *w])
    assert ref.returncode == 0, ref.stderr
    assert _tree(out) == _tree(tmp_path / "ref")
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------
# many inputs
# ------------------------------------------------------------------------------------------


def test_expand_inputs_and_largest_first(tmp_path):
    from satvsr_cli.engine.batch import assign, expand_inputs, output_name

    for name in ("b.mp4", "a.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "f").mkdir()
    for i in range(2):
        (tmp_path / "f" / f"{i}.png").write_bytes(b"x")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# clips\n{tmp_path / 'a.mp4'}\n\n{tmp_path / 'f'}\n")
    assert expand_inputs([str(tmp_path / "a.mp4")]) == ([str(tmp_path / "a.mp4")], False)
    assert expand_inputs([str(tmp_path / "*.mp4")]) == (
        [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")], True)
    # a glob of images stays one frame sequence, as before
    assert expand_inputs([str(tmp_path / "f" / "*.png")]) == ([str(tmp_path / "f" / "*.png")], False)
    assert expand_inputs([f"@{lst}", str(tmp_path / "a.mp4")]) == (
        [str(tmp_path / "a.mp4"), str(tmp_path / "f")], True)
    assert output_name(str(tmp_path / "a.mp4")) == "a_x4.mp4"
    assert output_name(str(tmp_path / "f")) == "f_x4"
    assert assign([5, 100, 7, 90, 1], 2) == [1, 0, 1, 1, 0]  # 100 | 90 → 7 → 5 → 1


def _clip(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    gen = imageio_ffmpeg.write_frames(str(path), (16, 12), fps=Fraction(25), macro_block_size=1,
                                      ffmpeg_log_level="error")
    gen.send(None)
    for _ in range(n):
        gen.send(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    gen.close()
    return path


def test_many_inputs_over_two_processes(data, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, n in enumerate((3, 6, 4)):
        _clip(clips / f"c{i}.mp4", n, i)
    (clips / "c9.mp4").write_bytes(b"not a video")
    lst = tmp_path / "more.txt"
    lst.write_text(f"{data['geo']}\n")
    out = tmp_path / "out"
    w = ["-w", str(data["weights"]), "--tile", "0", "--preset", "ultrafast", "--progress",
         "json"]
    cmd = [sys.executable, "-m", "satvsr_cli", "upscale", str(clips / "*.mp4"), f"@{lst}",
           "-o", str(out), *w, "--nproc", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300,
                       check=False)
    assert p.returncode == 7, p.stderr[-3000:]  # some inputs failed, the others are written
    # --progress json: the error is one JSON event on stderr, said once (by rank 0)
    errors = [json.loads(line) for line in p.stderr.splitlines()
              if line.startswith("{") and '"error"' in line]
    assert [e["message"] for e in errors if e.get("event") == "error"] == [
        next(e["message"] for e in errors if e.get("event") == "error")]
    assert "1 of 5 inputs failed" in errors[0]["message"] and errors[0]["exit_code"] == 7
    table = json.loads(p.stdout.strip().splitlines()[-1])
    assert table["event"] == "batch" and (table["done"], table["failed"]) == (4, 1)
    by_input = {Path(r["input"]).name: r for r in table["inputs"]}
    assert by_input["c9.mp4"]["status"] == "failed" and by_input["c9.mp4"]["exit_code"] == 2
    assert {r["rank"] for r in table["inputs"]} == {0, 1}
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".satvsr.json")) == [
        "c0_x4.mp4", "c1_x4.mp4", "c2_x4.mp4",
                                                     "geo_x4"]
    # one of them equals its single-process output
    ref = _single([str(clips / "c1.mp4"), "-o", str(tmp_path / "ref.mp4"), *w])
    assert ref.returncode == 0, ref.stderr
    assert (out / "c1_x4.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    # --resume skips the finished inputs (and retries the failed one), in one process here
    (out / "c2_x4.mp4").unlink()
    again = subprocess.run([sys.executable, "-m", "satvsr_cli", "upscale", str(clips / "*.mp4"),
                            f"@{lst}", "-o", str(out), *w, "--resume"], capture_output=True,
                           text=True, env=_env(), cwd=ROOT, timeout=300, check=False)
    assert again.returncode == 7, again.stderr[-3000:]
    table = json.loads(again.stdout.strip().splitlines()[-1])
    status = {Path(r["input"]).name: r["status"] for r in table["inputs"]}
    assert status == {"c0.mp4": "skipped", "c1.mp4": "skipped", "c2.mp4": "done",
                      "c9.mp4": "failed", "geo": "skipped"}


def test_bad_input_is_one_error_line_and_leaves_nothing(data, tmp_path):
    gray = tmp_path / "g"
    gray.mkdir()
    for i in range(3):
        with rasterio.open(gray / f"t{i}.tif", "w", driver="GTiff", width=8, height=8, count=4,
                           dtype="uint16", crs=CRS.from_epsg(32633),
                           transform=Affine(10, 0, 0, 0, -10, 0)) as ds:
            ds.write(np.ones((4, 8, 8), dtype="uint16"))
    out = tmp_path / "o.mp4"  # a 4-band video is impossible
    p = _torchrun([str(gray), "-o", str(out), "-w", str(data["weights"]), "--progress", "none"])
    assert p.returncode != 0 and p.stderr.count("error: ") == 1, p.stderr[-2000:]
    assert "4 bands" in p.stderr or "band" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["g"]
