"""Same job, same bytes; idempotent re-runs (issue 13).

The kill/resume loop runs ``python -m satvsr_cli upscale`` in a subprocess, kills it with
SIGKILL after some frames (read from ``--progress json``) or inside the commit step (the
``SATVSR_TEST_KILL_AT`` hook), resumes it and compares every output file byte for byte with an
uninterrupted run, for every output kind. Inputs are tiny (16 x 16 px) and the network is a tiny
LGTD, so that each run takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import helpers
import imageio_ffmpeg
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from satvsr_cli.cli import app

runner = CliRunner()
N_FRAMES = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return helpers.tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors", 0)


def make_frames(folder: Path, n: int = N_FRAMES, size: int = 16, seed: int = 0) -> Path:
    from satvsr_cli.io.frames import write_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size + n, size + n, 3)).astype(np.uint8)
    for i in range(n):  # one scene drifting by a pixel per frame
        write_image(folder / f"f{i}.png", np.ascontiguousarray(base[i:i + size, i:i + size]), "png")
    return folder


def make_geotiffs(folder: Path, n: int = N_FRAMES, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    base = rng.integers(100, 4000, (3, size + n, size + n)).astype("uint16")
    for i in range(n):
        with rasterio.open(folder / f"t{i:02d}.tif", "w", driver="GTiff", width=size,
                           height=size, count=3, dtype="uint16", crs=CRS.from_epsg(32633),
                           transform=Affine(10, 0, 500000, 0, -10, 4000000), nodata=0) as ds:
            ds.write(base[:, i:i + size, i:i + size])
            ds.update_tags(SATVSR_VALUE_RANGE="0,4095")
    return folder


def make_video(path: Path, n: int = N_FRAMES, size: int = 16) -> Path:
    rng = np.random.default_rng(2)
    gen = imageio_ffmpeg.write_frames(str(path), (size, size), fps=Fraction(10),
                                      macro_block_size=1, ffmpeg_log_level="error",
                                      quality=None, output_params=["-crf", "0"])
    gen.send(None)
    for _ in range(n):
        gen.send(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    gen.close()
    return path


#: output kind → (input maker, output name, extra options)
KINDS = {
    "frames": ("frames", "out", []),
    "geotiff-frames": ("geotiffs", "out", []),
    "geotiff-stack": ("geotiffs", "out.tif", []),
    "cog": ("geotiffs", "out.tif", ["--cog"]),
    "cog-frames": ("geotiffs", "out", ["--cog"]),
    "video": ("video", "out.mp4", ["--segment-frames", "2", "--preset", "ultrafast"]),
}

#: the commit-step kill point tried for each kind (see satvsr_cli.fsutil.kill_point)
COMMIT_KILLS = {
    "frames": "before-commit",
    "geotiff-frames": "after-commit",
    "geotiff-stack": "after-rename",
    "cog": "before-commit",
    "cog-frames": "after-commit",
    "video": "after-rename",
}


def make_input(tmp_path: Path, what: str) -> Path:
    if what == "frames":
        return make_frames(tmp_path / "in")
    if what == "geotiffs":
        return make_geotiffs(tmp_path / "in")
    return make_video(tmp_path / "in.mp4")


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or the file itself) and its bytes."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def cli_args(src: Path, out: Path, weights: Path, extra: list[str]) -> list[str]:
    return ["upscale", str(src), "-o", str(out), "-w", str(weights), "--batch", "1",
            "--progress", "json", *extra]


def env_for(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def kill_after_frames(args: list[str], k: int) -> int:
    """Run the CLI in a subprocess and SIGKILL it after ``k`` frame events; its return code."""
    # a pause after each frame, so that the kill lands before the job ends on a busy machine
    proc = subprocess.Popen([sys.executable, "-m", "satvsr_cli", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True,
                            env=env_for(SATVSR_TEST_FRAME_DELAY="0.3"))
    assert proc.stderr is not None
    seen = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if '"event": "frame"' in line:
            seen += 1
            if seen == k:
                proc.send_signal(signal.SIGKILL)
                break
    proc.stderr.close()
    return proc.wait(timeout=60)


def resume(args: list[str]):
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_then_resume_gives_the_same_bytes(tmp_path, weights, kind):
    what, name, extra = KINDS[kind]
    src = make_input(tmp_path, what)
    ref = tmp_path / ("ref" + Path(name).suffix)
    res = runner.invoke(app, cli_args(src, ref, weights, extra))
    assert res.exit_code == 0, res.output
    expected = tree(ref)
    # two runs of the same job: the same bytes
    again = tmp_path / ("again" + Path(name).suffix)
    assert runner.invoke(app, cli_args(src, again, weights, extra)).exit_code == 0
    assert tree(again) == expected

    # killed after 2 frames, then resumed
    out = tmp_path / name
    args = cli_args(src, out, weights, extra)
    assert kill_after_frames(args, 2) == -signal.SIGKILL
    assert not out.exists()
    summary = resume(args)
    assert summary["frames_total"] == N_FRAMES and summary["frames_resumed"] >= 1
    assert tree(out) == expected

    # killed inside the commit step, then resumed
    out2 = tmp_path / ("commit_" + name)
    args2 = cli_args(src, out2, weights, extra)
    point = COMMIT_KILLS[kind]
    killed = subprocess.run([sys.executable, "-m", "satvsr_cli", *args2], capture_output=True,
                            text=True, env=env_for(SATVSR_TEST_KILL_AT=point), check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    summary = resume(args2)
    assert summary["frames_written"] == 0
    assert tree(out2) == expected
    assert not Path(str(out2) + ".partial").exists()
    assert not Path(str(out2) + ".satvsr.lock").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp." in p.name]
    assert leftovers == []


def test_resume_on_a_complete_output_does_nothing_and_a_different_job_is_refused(tmp_path,
                                                                                 weights):
    src = make_frames(tmp_path / "in", n=3)
    out = tmp_path / "out"
    args = cli_args(src, out, weights, [])
    assert runner.invoke(app, args).exit_code == 0
    before = tree(out)
    stale = tmp_path / ".out.satvsr.json.x1y2.partial"  # a manifest write killed half-way
    stale.write_text("{")
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert not stale.exists()
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["already_complete"] and summary["frames_written"] == 0
    assert tree(out) == before
    done = [json.loads(line) for line in res.stderr.splitlines()][-1]
    assert done["event"] == "done" and "already complete" in done["message"]
    # plain mode says so in one line
    res = runner.invoke(app, [*args[:-2], "--progress", "plain", "--resume"])
    assert res.exit_code == 0 and "already complete" in res.stderr
    # a different job on the same output is refused with the reason
    res = runner.invoke(app, [*args, "--resume", "--tile-overlap", "2"])
    assert res.exit_code == 3
    assert "different settings (tile_overlap)" in res.stderr
    # without --resume: refused as before
    assert runner.invoke(app, args).exit_code == 3
    # the output changed since: refused
    next(out.iterdir()).unlink()
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 3 and "changed since" in res.stderr


def test_source_date_epoch_and_input_file_name_in_geotiff_tags(tmp_path, weights, monkeypatch):
    src = make_geotiffs(tmp_path / "in", n=2)
    out = tmp_path / "out"
    assert runner.invoke(app, cli_args(src, out, weights, [])).exit_code == 0
    with rasterio.open(out / "t00.tif") as ds:
        tags = ds.tags()
    assert "TIFFTAG_DATETIME" not in tags
    assert tags["SATVSR_SOURCE"] == "in" and str(tmp_path) not in json.dumps(tags)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out2 = tmp_path / "out2"
    assert runner.invoke(app, cli_args(src, out2, weights, [])).exit_code == 0
    with rasterio.open(out2 / "t00.tif") as ds:
        assert ds.tags()["TIFFTAG_DATETIME"] == "2023:11:14 22:13:20"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    res = runner.invoke(app, cli_args(src, tmp_path / "out3", weights, []))
    assert res.exit_code == 3 and "SOURCE_DATE_EPOCH" in res.stderr


def test_a_second_process_on_the_same_output_is_refused_at_once(tmp_path, weights):
    from satvsr_cli.engine.lock import OutputLock

    src = make_frames(tmp_path / "in", n=3)
    out = tmp_path / "out"
    # another process holds the lock (a subprocess, so that flock really is another owner)
    code = ("import sys, time; from pathlib import Path; "
            "from satvsr_cli.engine.lock import OutputLock; "
            f"lock = OutputLock(Path({str(out)!r})); lock.acquire(); print('locked', flush=True); "
            "sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        t0 = time.monotonic()
        res = runner.invoke(app, cli_args(src, out, weights, []))
        assert res.exit_code == 3 and time.monotonic() - t0 < 30
        events = [json.loads(line) for line in res.stderr.splitlines()]
        assert events[-1]["event"] == "error" and "another satvsr process" in events[-1]["message"]
        assert not out.exists() and not Path(str(out) + ".partial").exists()
    finally:
        holder.kill()  # dies holding the lock: the OS releases it
        holder.wait()
    assert Path(str(out) + ".satvsr.lock").exists()  # stale file of the killed holder
    with OutputLock(out):  # does not block
        pass
    res = runner.invoke(app, cli_args(src, out, weights, []))
    assert res.exit_code == 0, res.output
    assert not Path(str(out) + ".satvsr.lock").exists()


def test_two_concurrent_runs_one_wins_nothing_corrupted(tmp_path, weights):
    src = make_frames(tmp_path / "in", n=4)
    ref = tmp_path / "ref"
    assert runner.invoke(app, cli_args(src, ref, weights, [])).exit_code == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "satvsr_cli", *cli_args(src, out, weights, [])]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env_for()) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 3], results
    loser = next(err for rc, err in results if rc == 3)
    assert "another satvsr process" in loser or "already exists" in loser
    assert tree(out) == tree(ref)


def _limited(limit: int):
    """A ``preexec_fn`` that sets a file-size limit (SIGXFSZ keeps its default action, which
    would kill the process: ``satvsr upscale`` ignores it itself so that writes fail with
    EFBIG)."""
    def setup() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


@pytest.mark.parametrize("kind", ["frames", "geotiff-frames", "video"])
def test_file_size_limit_mid_run_keeps_the_finished_frames_for_resume(tmp_path, weights, kind):
    if kind == "geotiff-frames":
        folder = tmp_path / "in"
        folder.mkdir()
        rng = np.random.default_rng(3)
        for i in range(N_FRAMES):
            img = (np.full((3, 16, 16), 900, np.uint16) if i >= 3
                   else rng.integers(100, 4000, (3, 16, 16)).astype(np.uint16))
            with rasterio.open(folder / f"t{i}.tif", "w", driver="GTiff", width=16, height=16,
                               count=3, dtype="uint16", crs=CRS.from_epsg(32633),
                               transform=Affine(10, 0, 0, 0, -10, 0)) as ds:
                ds.write(img)
                ds.update_tags(SATVSR_VALUE_RANGE="0,4095")
        src, name, extra = folder, "out", []
    elif kind == "frames":
        # the (random tiny) network's output of flat frames compresses worse than that of noisy
        # ones: with a limit between the two, the limit is hit mid-run
        folder = tmp_path / "in"
        folder.mkdir()
        from satvsr_cli.io.frames import write_image

        rng = np.random.default_rng(3)
        for i in range(N_FRAMES):
            img = (np.full((16, 16, 3), 90, np.uint8) if i >= 3
                   else rng.integers(0, 256, (16, 16, 3)).astype(np.uint8))
            write_image(folder / f"f{i}.png", img, "png")
        src, name, extra = folder, "out", []
    else:
        src, name, extra = make_video(tmp_path / "in.mp4"), "out.mp4", [
            "--segment-frames", "2", "--preset", "ultrafast"]
    ref = tmp_path / ("ref" + Path(name).suffix)
    assert runner.invoke(app, cli_args(src, ref, weights, extra)).exit_code == 0
    sizes = [len(b) for _name, b in sorted(tree(ref).items())]
    if kind != "video":  # the first two frames fit, a later one does not
        assert max(sizes[:2]) < max(sizes), sizes
        limit = (max(sizes[:2]) + max(sizes)) // 2
    else:  # the segments fit, the joined file does not
        limit = sizes[0] * 2 // 3
    out = tmp_path / name
    args = cli_args(src, out, weights, extra)
    plain = [("plain" if a == "json" else a) for a in args]
    res = subprocess.run([sys.executable, "-m", "satvsr_cli", *plain], capture_output=True,
                         text=True, env=env_for(PYTHONDONTWRITEBYTECODE="1"),
                         preexec_fn=_limited(limit), check=False)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.returncode == 3, res.stderr
    assert len(errors) == 1 and "Traceback" not in res.stderr
    assert "--resume" in errors[0] and "file size limit" in errors[0]
    assert not out.exists() and Path(str(out) + ".partial").exists()
    summary = resume(args)  # no limit now
    assert summary["frames_resumed"] >= 1
    assert tree(out) == tree(ref)


def test_an_interrupted_overwrite_run_is_resumed(tmp_path, weights, monkeypatch):
    from satvsr_cli.io import frames as frames_mod

    src = make_frames(tmp_path / "in", n=4)
    out = tmp_path / "out"
    args = cli_args(src, out, weights, [])
    assert runner.invoke(app, args).exit_code == 0
    expected = tree(out)
    (out / "f0.png").write_bytes(b"old")  # the old output, to be replaced
    original = frames_mod.FramesSink.write
    calls = []

    def write_then_ctrl_c(self, index, data, valid):
        calls.append(index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(self, index, data, valid)

    monkeypatch.setattr(frames_mod.FramesSink, "write", write_then_ctrl_c)
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 130
    monkeypatch.setattr(frames_mod.FramesSink, "write", original)
    assert (out / "f0.png").read_bytes() == b"old"  # untouched until the commit
    res = runner.invoke(app, args)
    assert res.exit_code == 3 and "--resume" in res.stderr
    summary = resume(args)
    assert summary["frames_resumed"] == 1 and summary["frames_written"] == 3
    assert tree(out) == expected
