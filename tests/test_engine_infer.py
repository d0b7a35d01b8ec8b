"""The engine core: equality with the networks, tiled == untiled, shared features, OOM, fp32 retry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from satvsr_cli.engine.convert import plan_bands
from satvsr_cli.engine.infer import OutOfMemory, WindowUpscaler
from satvsr_cli.engine.windows import frame_indices
from satvsr_cli.io.base import Frame
from satvsr_cli.models import build_model, pad_to_multiple, tiny_overrides
from satvsr_cli.resize import imresize

CPU = torch.device("cpu")


class LocalNet(nn.Module):
    """Follows the satvsr contract; receptive field: 2 LR px (two 3x3 convs) + pixel shuffle."""

    scale = 4
    frames = 5
    size_multiple = 4
    feat_channels = 6

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.f = nn.Conv2d(3, 6, 3, padding=1)
        self.g = nn.Conv2d(5 * 6 + 3, 48, 3, padding=1)
        self.extract_calls = 0
        self.extracted_frames = 0

    def extract(self, x):
        self.extract_calls += 1
        self.extracted_frames += x.shape[0]
        return torch.relu(self.f(x))

    def forward_window(self, clip, feats):
        x = torch.cat([feats.flatten(1, 2), clip[:, 2]], 1)
        return F.pixel_shuffle(torch.sigmoid(self.g(x)) * 1.2 - 0.1, 4)

    def forward(self, clip):
        b, t, _, h, w = clip.shape
        p = pad_to_multiple(clip, self.size_multiple)
        feats = self.extract(p.flatten(0, 1)).unflatten(0, (b, t))
        return self.forward_window(p, feats)[..., : 4 * h, : 4 * w]


def make_frames(n, h, w, c=3, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max
    base = rng.integers(0, hi + 1, size=(h + n, w + n, c)).astype(np.float64)
    k = np.ones(3) / 3  # smooth a little so that frames look like images
    base = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, base)
    return {i: Frame(i, base[i : i + h, i : i + w].astype(dtype), None) for i in range(n)}


def engine(model, *, tile=None, overlap=8, blend="cosine", batch=1, cache=1 << 30, bands=3,
           vrange=(0.0, 255.0), dtype="uint8", precision="fp32", band_sel=None, warn=None):
    return WindowUpscaler(
        model, device=CPU, precision=precision, tile=tile, overlap=overlap, blend=blend,
        batch=batch, cache_budget=cache, bands=plan_bands(bands, band_sel), value_range=vrange,
        out_dtype=dtype, on_warning=warn,
    )


def reference(model, frames, window, lo=0.0, hi=255.0):
    clip = torch.stack(
        [torch.from_numpy((frames[j].data.astype(np.float32) - lo) / (hi - lo)).permute(2, 0, 1)
         for j in window]
    )[None]
    with torch.inference_mode():
        return model(clip)[0].numpy()


def to_u8(y):
    return np.clip(np.rint(np.clip(y, 0, 1) * 255), 0, 255)


@pytest.mark.parametrize("blend", ["cosine", "linear", "none"])
@pytest.mark.parametrize(("tile", "overlap"), [(16, 8), ((12, 20), 12), (24, 6)])
def test_tiled_equals_untiled_when_the_overlap_covers_the_receptive_field(tile, overlap, blend):
    net = LocalNet().eval()
    frames = make_frames(5, 37, 45)
    win = [0, 1, 2, 3, 4]
    full = engine(net, tile=None).upscale(2, win, frames).astype(np.int32)
    tiled_engine = engine(net, tile=tile, overlap=overlap, blend=blend, batch=3)
    tiled = tiled_engine.upscale(2, win, frames).astype(np.int32)
    assert tiled_engine.plan is not None and tiled_engine.plan.n_tiles > 1
    assert np.abs(tiled - full).max() <= 1  # within 1/255
    ref = to_u8(reference(net, frames, win))
    assert np.abs(full - ref).max() <= 1


@pytest.mark.parametrize("name", ["lgtd_small", "msdtgp_small", "lgtd", "lgtd_lite"])
def test_engine_equals_model_forward_for_registry_networks(name):
    torch.manual_seed(0)
    net = build_model(name, **tiny_overrides(name)).eval()
    frames = make_frames(6, 19, 23, seed=1)  # not a multiple of 4 or 16: exercises padding
    up = engine(net, tile=None, vrange=(0.0, 1.0 * 255), dtype="float32")
    for t in (0, 5):
        win = frame_indices(t, 6)
        out = up.upscale(t, win, frames) / 255.0
        ref = np.clip(reference(net, frames, win), 0, 1)
        np.testing.assert_allclose(out, ref, atol=2e-5, rtol=0)


def test_per_frame_features_are_computed_once_and_shared():
    net = LocalNet().eval()
    n = 9
    frames = make_frames(n, 20, 28)
    up = engine(net, tile=16, overlap=4, batch=2)
    plan_tiles = None
    outs = []
    for t in range(n):
        outs.append(up.upscale(t, frame_indices(t, n), frames))
        plan_tiles = up.plan.n_tiles
        for j in [j for j in range(n) if j < t - 2]:
            up.forget(j)
    assert net.extracted_frames == n * plan_tiles  # every frame tile exactly once
    assert up.stats.cache_hits > 0
    # without the cache the result is identical but extraction is repeated
    net2 = LocalNet().eval()
    up2 = engine(net2, tile=16, overlap=4, batch=2, cache=0)
    for t in range(n):
        np.testing.assert_array_equal(up2.upscale(t, frame_indices(t, n), frames), outs[t])
    assert net2.extracted_frames > n * plan_tiles


def test_windows_of_several_frames_share_batches():
    net = LocalNet().eval()
    n = 6
    frames = make_frames(n, 16, 16)
    one = engine(net, tile=None)
    singles = [one.upscale(t, frame_indices(t, n), frames) for t in range(n)]
    many = engine(net, tile=None, batch=4)
    assert many.frames_per_call() == 1  # plan not made yet
    many.set_frame_size(16, 16)
    assert many.frames_per_call() == 4
    outs = many.upscale_many([(t, frame_indices(t, n)) for t in range(4)], frames)
    outs += many.upscale_many([(t, frame_indices(t, n)) for t in range(4, 6)], frames)
    for a, b in zip(singles, outs, strict=True):
        np.testing.assert_array_equal(a, b)


class OOMNet(LocalNet):
    """Raises an out-of-memory error when a call covers more than ``limit`` LR pixels."""

    def __init__(self, limit, exc=RuntimeError) -> None:
        super().__init__()
        self.limit = limit
        self.exc = exc

    def forward_window(self, clip, feats):
        if clip.shape[0] * clip.shape[-1] * clip.shape[-2] > self.limit:
            if self.exc is MemoryError:
                raise MemoryError
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward_window(clip, feats)


@pytest.mark.parametrize("exc", [RuntimeError, MemoryError])
def test_out_of_memory_halves_the_tile_and_keeps_the_frame(exc):
    frames = make_frames(5, 40, 40)
    win = [0, 1, 2, 3, 4]
    warnings = []
    net = OOMNet(limit=24 * 24, exc=exc).eval()
    up = engine(net, tile=None, overlap=8, batch=2, warn=warnings.append)
    out = up.upscale(2, win, frames).astype(np.int32)
    assert up.stats.oom_retries >= 2
    assert up.plan.tile_height * up.plan.tile_width <= 24 * 24
    assert any("out of memory" in w for w in warnings)
    ref = engine(LocalNet().eval(), tile=None).upscale(2, win, frames).astype(np.int32)
    assert np.abs(out - ref).max() <= 1


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error():
    frames = make_frames(5, 40, 40)
    up = engine(OOMNet(limit=1).eval(), tile=None)
    with pytest.raises(OutOfMemory, match="even with"):
        up.upscale(2, [0, 1, 2, 3, 4], frames)


class NaNUnderAutocast(LocalNet):
    """Returns NaN when run under autocast (simulates a half-precision overflow)."""

    def forward_window(self, clip, feats):
        out = super().forward_window(clip.float(), feats.float())
        if torch.is_autocast_enabled("cpu"):
            out = out.clone()
            out[:, :, 0, 0] = float("nan")
        return out


def test_non_finite_tiles_are_recomputed_in_fp32():
    frames = make_frames(5, 24, 24)
    win = [0, 1, 2, 3, 4]
    warnings = []
    up = engine(NaNUnderAutocast().eval(), tile=16, overlap=4, precision="bf16", batch=4,
                warn=warnings.append)
    out = up.upscale(2, win, frames).astype(np.int32)
    assert up.stats.nonfinite_retries == up.plan.n_tiles
    assert up.stats.nonfinite_left == 0
    assert any("recomputed in fp32" in w for w in warnings)
    ref = engine(LocalNet().eval(), tile=16, overlap=4).upscale(2, win, frames).astype(np.int32)
    assert np.abs(out - ref).max() <= 1


def test_nan_in_fp32_is_counted_and_zeroed():
    class AlwaysNaN(LocalNet):
        def forward_window(self, clip, feats):
            out = super().forward_window(clip, feats).clone()
            out[:, 0, :2, :2] = float("nan")
            return out

    frames = make_frames(5, 16, 16)
    up = engine(AlwaysNaN().eval(), tile=None)
    out = up.upscale(2, [0, 1, 2, 3, 4], frames)
    assert up.stats.nonfinite_left == 1
    assert out[0, 0, 0] == 0


def test_one_band_is_replicated_and_averaged():
    net = LocalNet().eval()
    frames3 = make_frames(5, 16, 20, c=1, dtype=np.uint16, seed=4)
    up = engine(net, bands=1, vrange=(0.0, 65535.0), dtype="uint16")
    out = up.upscale(2, [0, 1, 2, 3, 4], frames3)
    assert out.shape == (1, 64, 80) and out.dtype == np.uint16
    rgb = {i: Frame(i, np.repeat(f.data, 3, axis=2), None) for i, f in frames3.items()}
    y = np.clip(reference(net, rgb, [0, 1, 2, 3, 4], 0, 65535), 0, 1).mean(axis=0)
    np.testing.assert_allclose(out[0], np.rint(y * 65535), atol=1.0)


def test_extra_bands_go_through_bicubic_with_explicit_bands():
    net = LocalNet().eval()
    frames = make_frames(5, 12, 16, c=4, seed=5)
    up = engine(net, bands=4, band_sel=(3, 2, 1))
    out = up.upscale(2, [0, 1, 2, 3, 4], frames)
    np.testing.assert_array_equal(out[3], imresize(np.ascontiguousarray(frames[2].data[..., 3]), 4))
    bgr = {i: Frame(i, f.data[..., [2, 1, 0]], None) for i, f in frames.items()}
    ref = to_u8(reference(net, bgr, [0, 1, 2, 3, 4]))  # channel 0 of the pass is band 3
    assert np.abs(out[[2, 1, 0]].astype(int) - ref).max() <= 1


def test_more_than_three_bands_go_through_the_network_by_triplets():
    net = LocalNet().eval()
    frames = make_frames(5, 12, 12, c=5, seed=6)
    up = engine(net, bands=5)
    out = up.upscale(2, [0, 1, 2, 3, 4], frames)
    assert out.shape == (5, 48, 48)
    first = {i: Frame(i, f.data[..., :3], None) for i, f in frames.items()}
    assert np.abs(out[:3].astype(int) - to_u8(reference(net, first, [0, 1, 2, 3, 4]))).max() <= 1
    last = {i: Frame(i, f.data[..., [3, 4, 4]], None) for i, f in frames.items()}
    y = np.clip(reference(net, last, [0, 1, 2, 3, 4]), 0, 1)
    assert np.abs(out[3].astype(int) - np.rint(y[0] * 255)).max() <= 1
    assert np.abs(out[4].astype(float) - np.rint((y[1] + y[2]) / 2 * 255)).max() <= 1
