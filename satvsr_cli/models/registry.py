"""Network registry: names → (class, default kwargs) with ``build_model``, ``list_models``, ``get_spec``.

Registered networks (×4, 5 frames). GMAC per output frame at LR 160×160 (→ 640×640), counted with
``satvsr_cli.models.flops.count_gmac_by_name`` (conv/linear/matmul; the DCN's bilinear sampling is
not counted). CPU time: batch 1, ``no_grad``, full forward (pad → extract → forward_window),
``torch.set_num_threads(2)``, PyTorch 2.13 CPU build, on the 2-core dev box that was SHARED with
four other jobs (load average 3.5–5 for most measurements, so these are pessimistic):

=============  ===========  ==========  ==============================  =========================
name           params       GMAC/frame  CPU s/frame measured here       unloaded reference
=============  ===========  ==========  ==============================  =========================
msdtgp         14,174,083   1,563.5     45.0 (1 run, load 4.2)          spec: 19.0 @160×120
lgtd           20,980,929   743.4       51.6 (1 run, load 5.0)          spec: 14.2 @160×128
lgtd_hat6      24,326,607   846.6       55.8 (1 run, load 4.2)          spec: 14.8 @160×128
lgtd_lite       6,877,844   294.4       10.2 (1 run, load 4.5)          spec: 2.2 @160×120
msdtgp_small      150,040   15.0        min 0.40, med 0.43 (load 2–3)   min 0.39, med 0.42 (*)
lgtd_small        356,004   16.0        min 1.2, med 1.4 (load 4–5)     min 0.29, med 0.30 (*)
=============  ===========  ==========  ==============================  =========================

"spec" quotes the reference figures of the specification satvsr was written from (an unloaded
2-core CPU, 2 threads; see ``docs/networks.md``). (*) measured early in the session while the box was lightly loaded (load average 0.9–2.5),
2 threads, 4 timed runs, with an earlier revision of the code (same kwargs and parameters; the code
has only become faster since).

Single-threaded under load 4–5 the small presets took 0.57–1.0 s (msdtgp_small) and 0.45–0.8 s
(lgtd_small). On a busy machine two OpenMP threads can be several times SLOWER than one.

At LR 160×120 the paper configurations count msdtgp 1,172.6 GMAC (spec: 1,185.8; satvsr
computes the duplicated MSD(F_2, ref) call of the two temporal groups once, −13.2 GMAC), lgtd_lite
220.8 (spec 220.8); lgtd at 160×128 (160×120 padded) 594.7 (spec 594.7), lgtd_hat6 677.3 (677.3).
An engine that reuses ``extract`` saves little: the per-frame extractor is 0.13 (msdtgp_small),
0.25 (lgtd_small), 5.7 (msdtgp) and 9.5 (lgtd) GMAC per frame; alignment depends on the reference.

The small presets keep the topology of their family with fewer channels and blocks; every width
and depth is a constructor keyword, so a preset is just a kwargs set. ``TINY_OVERRIDES`` gives
kwargs for test-sized networks (tens of thousands of parameters).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from satvsr_cli.errors import ModelError

__all__ = [
    "TINY_OVERRIDES",
    "ModelSpec",
    "build_model",
    "get_spec",
    "list_models",
    "tiny_overrides",
]


@dataclass(frozen=True)
class ModelSpec:
    """What a registered network is: its family, contract and default constructor kwargs."""

    name: str
    family: str
    description: str
    size_multiple: int
    frames: int = 5
    scale: int = 4
    paper: bool = False
    default_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Measured peak bytes per LR pixel of one tile for one window at batch 1, fp32 (see
    #: :mod:`satvsr_cli.engine.memory` for how it was measured); ``None``: the family's.
    bytes_per_lr_pixel: int | None = None
    #: Automatic tile overlap in LR pixels: the blend uses only pixels at least a third of it
    #: inside a tile, which must cover the network's effective receptive field (engine/tiling.py).
    tile_overlap: int = 32

    @property
    def tiny_overrides(self) -> dict[str, Any]:
        """Constructor overrides for a test-sized network (see :data:`TINY_OVERRIDES`)."""
        return dict(TINY_OVERRIDES.get(self.name, TINY_OVERRIDES.get(self.family, {})))


def _model_class(family: str) -> type[nn.Module]:
    """The network class of a family (imported lazily); ModelError for an unknown family."""
    if family == "msdtgp":
        from satvsr_cli.models.msdtgp import MSDTGP

        return MSDTGP
    if family == "lgtd":
        from satvsr_cli.models.lgtd import LGTD

        return LGTD
    raise ModelError(f"unknown network family {family!r}; known: msdtgp, lgtd")


_SPECS: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    """Add ``spec`` to the registry (names are unique)."""
    if spec.name in _SPECS:
        raise RuntimeError(f"network {spec.name!r} registered twice")
    _SPECS[spec.name] = spec


_register(
    ModelSpec(
        name="msdtgp",
        family="msdtgp",
        description="MSDTGP (TGRS 2022), paper configuration, 14.17 M params",
        size_multiple=1,
        bytes_per_lr_pixel=115_000,
        paper=True,
        default_kwargs={},
    )
)
_register(
    ModelSpec(
        name="lgtd",
        family="lgtd",
        description="LGTD (TCSVT 2024) with a 5-RHAG HAT head, paper-like, 20.98 M params",
        size_multiple=16,
        bytes_per_lr_pixel=110_000,
        paper=True,
        default_kwargs={"head": "hat", "n_head_blocks": 5},
    )
)
_register(
    ModelSpec(
        name="lgtd_hat6",
        family="lgtd",
        description="LGTD with the upstream default 6-RHAG HAT head, 24.33 M params",
        size_multiple=16,
        bytes_per_lr_pixel=110_000,
        paper=True,
        default_kwargs={"head": "hat", "n_head_blocks": 6},
    )
)
_register(
    ModelSpec(
        name="lgtd_lite",
        family="lgtd",
        description="LGTD trunk with the ResNet head (upstream LGTD_arc), 6.88 M params",
        size_multiple=4,
        bytes_per_lr_pixel=63_000,
        paper=True,
        default_kwargs={"head": "resnet", "n_head_blocks": 5},
    )
)
_register(
    ModelSpec(
        name="msdtgp_small",
        family="msdtgp",
        description="MSDTGP topology with reduced widths/depths for CPU training and inference",
        size_multiple=1,
        bytes_per_lr_pixel=15_000,
        paper=False,
        default_kwargs={
            "base_filter": 32,
            "feat": 8,
            "nf": 16,
            "num_stages": 1,
            "n_resblock": 2,
            "n_resblock_hr": 1,
            "n_ext_resblock": 1,
            "groups": 2,
            "residual": True,
            "zero_init_offsets": True,
            "max_offset": 8.0,
        },
    )
)
_register(
    ModelSpec(
        name="lgtd_small",
        family="lgtd",
        description="LGTD-lite topology (ResNet head) with reduced widths/depths for CPU use",
        size_multiple=4,
        bytes_per_lr_pixel=17_000,
        paper=False,
        default_kwargs={
            "head": "resnet",
            "nf": 16,
            "groups": 4,
            "n_ext_resblock": 2,
            "n_comp_resblock": 2,
            "stdm_nf": 32,
            "stdm_diff_nf": 16,
            "head_nf": 48,
            "n_head_blocks": 3,
            "upsample_nf": 16,
            "residual": True,
            "zero_init_offsets": True,
            "max_offset": 8.0,
            "local_upsample": True,
        },
    )
)
_register(
    ModelSpec(
        name="lgtd_base",
        family="lgtd",
        description="lgtd_small's trunk with a wider, deeper reconstruction head: the quality "
        "preset (trained grown from lgtd_small weights, models/grow.py)",
        size_multiple=4,
        bytes_per_lr_pixel=20_000,
        tile_overlap=48,  # 14 more 3x3 convs than lgtd_small; 32 px differ by up to 6/255
        paper=False,
        default_kwargs={
            "head": "resnet",
            "nf": 16,
            "groups": 4,
            "n_ext_resblock": 2,
            "n_comp_resblock": 2,
            "stdm_nf": 32,
            "stdm_diff_nf": 16,
            "head_nf": 64,
            "n_head_blocks": 10,
            "upsample_nf": 16,
            "residual": True,
            "zero_init_offsets": True,
            "max_offset": 8.0,
            "local_upsample": True,
        },
    )
)

#: Tiny constructor overrides per registered name (a few thousand to a few tens of thousands of
#: parameters), for fast tests: ``build_model(name, **TINY_OVERRIDES[name])``. The family names
#: ``"msdtgp"`` and ``"lgtd"`` are keys too.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "msdtgp": {
        "base_filter": 8,
        "feat": 4,
        "nf": 4,
        "num_stages": 2,
        "n_resblock": 1,
        "n_resblock_hr": 1,
        "n_ext_resblock": 1,
        "groups": 2,
    },
    "lgtd": {
        "nf": 8,
        "groups": 2,
        "n_ext_resblock": 1,
        "n_comp_resblock": 1,
        "stdm_nf": 8,
        "stdm_diff_nf": 4,
        "head_nf": 16,
        "n_head_blocks": 1,
        "upsample_nf": 4,
        "hat_depth": 2,
        "num_heads": 2,
        "window_size": 4,
        "hat_squeeze_factor": 2,
    },
    "lgtd_lite": {
        "nf": 8,
        "groups": 2,
        "n_ext_resblock": 1,
        "n_comp_resblock": 1,
        "stdm_nf": 8,
        "stdm_diff_nf": 4,
        "head_nf": 8,
        "n_head_blocks": 1,
        "upsample_nf": 4,
    },
}
TINY_OVERRIDES["lgtd_hat6"] = dict(TINY_OVERRIDES["lgtd"], n_head_blocks=2)
# The tiny versions of the small presets switch the bicubic skip off: with it, an untrained
# network ignores its input except for the centre frame (its last conv starts at zero), which
# would hide wiring mistakes from the topology tests. tests/test_models_residual.py covers it.

# Zero-initialised offsets likewise leave the offset branch without a gradient at step 0.
_NO_ZERO_START = {"residual": False, "zero_init_offsets": False}
TINY_OVERRIDES["msdtgp_small"] = {**TINY_OVERRIDES["msdtgp"], **_NO_ZERO_START}
TINY_OVERRIDES["lgtd_small"] = {**TINY_OVERRIDES["lgtd_lite"], **_NO_ZERO_START}
TINY_OVERRIDES["lgtd_base"] = {**TINY_OVERRIDES["lgtd_lite"], **_NO_ZERO_START}


def list_models() -> list[str]:
    """The registered network names, in registration order (paper configs first)."""
    return list(_SPECS)


def _unknown(name: str) -> ModelError:
    """The one-line error for an unknown network name."""
    return ModelError(f"unknown network {name!r}; valid: {', '.join(list_models())}")


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; raises :class:`ModelError` for an unknown name."""
    try:
        spec = _SPECS[name]
    except KeyError:
        raise _unknown(name) from None
    # a copy of the kwargs, so callers cannot edit the registry
    return replace(spec, default_kwargs=dict(spec.default_kwargs))


def tiny_overrides(name: str) -> dict[str, Any]:
    """A copy of the tiny test overrides for ``name``."""
    get_spec(name)
    return dict(TINY_OVERRIDES[name])


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build the network ``name`` with its preset kwargs updated by ``overrides``.

    Raises:
        ModelError: an unknown name, an unknown keyword, or a value the constructor rejects
            (the constructor's ``ValueError`` message, on one line).
    """
    spec = get_spec(name)
    cls = _model_class(spec.family)
    params = inspect.signature(cls.__init__).parameters
    bad = sorted(k for k in overrides if k not in params or k == "self")
    if bad:
        valid = ", ".join(k for k in params if k != "self")
        raise ModelError(f"unknown option(s) {', '.join(bad)} for network {name!r}; valid: {valid}")
    kwargs = {**spec.default_kwargs, **overrides}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        raise ModelError(f"invalid configuration for network {name!r}: {message}") from exc
