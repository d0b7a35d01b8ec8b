"""Build the shipped demo clip ``demo/`` from one public-domain UC Merced aerial image.

The source is ``images/ucmerced/freeway/freeway01.tif`` of the UC Merced Land Use dataset
(Yang & Newsam, ACM SIGSPATIAL GIS 2010): USGS National Map orthoimagery, US public domain,
256 x 256 px at 0.3 m (1 ft). It is taken as the high-resolution scene. The script makes a short
"staring satellite video" from it, the way satellite-video SR data are made:

1. platform drift: the scene is shifted by a smooth sub-pixel path plus a little jitter
   (Fourier shift of the reflect-padded image, so the shift is exact and sharp), and a
   240 x 240 window is cut out;
2. two small vehicles drive along the freeway lanes in opposite directions (drawn with 8x
   supersampling, with a shadow);
3. every high-resolution frame is reduced x1/4 with MATLAB-style bicubic
   (:func:`satvsr_cli.resize.imresize`, the Jilin-189 degradation), giving 60 x 60 LR frames at
   about 1.2 m GSD, close to Jilin-1 video.

Outputs (all deterministic): ``demo/freeway_drift.mp4`` (H.264, CRF 10, 10 fps, 12 frames),
``demo/freeway_drift_lr/000..011.png`` (the exact LR frames) and ``demo/README.md``. The
high-resolution frames are not shipped; ``--gt DIR`` writes them for a quality check.

Usage: ``python scripts/make_demo.py [--data ../shared/data] [--out demo] [--gt DIR]``
"""

from __future__ import annotations

import argparse
import subprocess
from fractions import Fraction
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from satvsr_cli.resize import imresize

SOURCE = Path("images/ucmerced/freeway/freeway01.tif")
N_FRAMES = 12
FPS = Fraction(10)
CROP = 240  # HR window, LR = CROP / 4
PAD = 16  # margin for the drift (HR px)
SEED = 20240601

README = """# Demo clip

`freeway_drift.mp4` is a short synthetic "staring satellite video" (12 frames, 60 x 60 px,
10 fps) made by `scripts/make_demo.py` from one public-domain aerial image; the same frames are
in `freeway_drift_lr/` as lossless PNG. Upscale it with the default shipped network:

```
satvsr upscale demo/freeway_drift.mp4 -o demo_x4.mp4
```

How it was made: the 256 x 256 source image (0.3 m) is the high-resolution scene; it drifts by
a smooth sub-pixel path with jitter (about 0.4 LR px per frame), two small vehicles drive along
the freeway, and every frame is reduced x1/4 with MATLAB-style bicubic (the Jilin-189
degradation), giving LR frames at about 1.2 m ground sampling distance. The drift and the
vehicles are synthetic; the ground is real.

## Attribution

Source image: `freeway01.tif` of the UC Merced Land Use dataset, USGS National Map Urban Area
orthoimagery (US public domain). Please cite the dataset:

Yi Yang and Shawn Newsam, "Bag-of-visual-words and spatial extensions for land-use
classification", ACM SIGSPATIAL International Conference on Advances in Geographic Information
Systems (ACM GIS), 2010.

The derived files in this folder are public domain as well.
"""


def fourier_shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift ``img`` (H, W, C) float by (dy, dx) pixels (positive = content moves down/right)."""
    h, w = img.shape[:2]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    phase = np.exp(-2j * np.pi * (fy * dy + fx * dx))
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        out[..., c] = np.real(np.fft.ifft2(np.fft.fft2(img[..., c]) * phase))
    return out


def draw_vehicle(
    img: np.ndarray, cx: float, cy: float, angle: float, colour: tuple[int, int, int]
) -> None:
    """Draw a 15 x 6 px (4.5 x 1.8 m) vehicle with its shadow, antialiased by supersampling."""
    ss = 8
    length, width = 15.0, 6.0
    r = int(length) + 4
    y0, x0 = int(cy) - r, int(cx) - r
    ys = (np.arange((2 * r) * ss) + 0.5) / ss + y0
    xs = (np.arange((2 * r) * ss) + 0.5) / ss + x0
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    ca, sa = np.cos(angle), np.sin(angle)

    def rect(ox: float, oy: float) -> np.ndarray:
        u = (xx - cx - ox) * ca + (yy - cy - oy) * sa
        v = -(xx - cx - ox) * sa + (yy - cy - oy) * ca
        return ((np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)).astype(np.float64)

    def coverage(mask: np.ndarray) -> np.ndarray:
        return mask.reshape(2 * r, ss, 2 * r, ss).mean(axis=(1, 3))

    shadow = coverage(rect(2.0, 2.5))
    body = coverage(rect(0.0, 0.0))
    sl = (slice(max(y0, 0), y0 + 2 * r), slice(max(x0, 0), x0 + 2 * r))
    patch = img[sl]
    oy, ox = sl[0].start - y0, sl[1].start - x0
    shadow = shadow[oy : oy + patch.shape[0], ox : ox + patch.shape[1], None]
    body = body[oy : oy + patch.shape[0], ox : ox + patch.shape[1], None]
    patch *= 1.0 - 0.55 * shadow
    patch[:] = patch * (1.0 - body) + np.asarray(colour, dtype=np.float64) * body


def make_frames(source: np.ndarray) -> list[np.ndarray]:
    """The HR frames (CROP x CROP uint8) of the clip."""
    rng = np.random.default_rng(SEED)
    base = np.pad(source.astype(np.float64), ((PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")
    # The freeway runs from the top left to the bottom right at about 63 degrees.
    angle = np.deg2rad(63.0)
    direction = np.array([np.cos(angle), np.sin(angle)])
    cars = [  # (start x, start y in source px, speed px/frame along direction, colour)
        (96.0, 20.0, 7.0, (236, 236, 232)),
        (206.0, 236.0, -6.0, (170, 30, 30)),
    ]
    frames = []
    for t in range(N_FRAMES):
        dx = 1.6 * t + 0.6 * np.sin(0.9 * t) + rng.normal(0, 0.25)
        dy = 0.9 * t + 0.5 * np.cos(1.3 * t) + rng.normal(0, 0.25)
        scene = base.copy()
        for x, y, speed, colour in cars:
            px, py = np.array([x, y]) + direction * speed * t
            draw_vehicle(scene, px + PAD, py + PAD, angle, colour)
        shifted = fourier_shift(scene, -dy, -dx)
        crop = shifted[PAD : PAD + CROP, PAD : PAD + CROP]
        frames.append(np.clip(np.rint(crop), 0, 255).astype(np.uint8))
    return frames


def main() -> None:
    """Build ``demo/``."""
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=repo.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=repo / "demo")
    ap.add_argument("--gt", type=Path, default=None, help="also write the HR frames here")
    args = ap.parse_args()

    source = iio.imread(args.data / SOURCE)[..., :3]
    hr = make_frames(source)
    lr = [imresize(f, 0.25) for f in hr]
    out: Path = args.out
    frames_dir = out / "freeway_drift_lr"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(lr):
        iio.imwrite(frames_dir / f"{i:03d}.png", f)
    if args.gt is not None:
        args.gt.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(hr):
            iio.imwrite(args.gt / f"{i:03d}.png", f)
    h, w = lr[0].shape[:2]
    video = out / "freeway_drift.mp4"
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-",
        "-vf", "scale=out_color_matrix=bt709:out_range=tv",
        "-c:v", "libx264", "-crf", "10", "-preset", "slow", "-pix_fmt", "yuv420p",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-movflags", "+faststart", str(video),
    ]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in lr), check=True)
    (out / "README.md").write_text(README)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {video} ({len(lr)} frames, {w}x{h}), {frames_dir}/, README.md; {total} bytes")


if __name__ == "__main__":
    main()
