"""Training configuration: frozen dataclasses, named recipes, config files and ``--set`` overrides.

Precedence, lowest first: the recipe (``--recipe``, or the one that fits ``--model``), then the
config file (``--config``: TOML, JSON or YAML with the same nesting as :class:`RunConfig`), then
command-line overrides (``--set train.lr=2e-4`` and the dedicated flags). The resolved
configuration, with data-dependent values filled in (iterations from epochs, milestones in
iterations, absolute paths), is written to ``RUN_DIR/config.json`` and into every checkpoint.

Recipes (``networks.md`` §10):

- ``msdtgp``: the upstream MSDTGP defaults. Adam 8e-5, β (0.9, 0.999), eps 1e-8, LR patch 32,
  batch 1, L1, 50 epochs, ÷10 after epochs 24 and 49, flips and 180° rotation, seed 123,
  validation every epoch. No EMA, no AMP, no clipping.
- ``lgtd``: the upstream LGTD defaults. Adam 1e-4, LR patch 64, batch 4, ×0.5 after epochs
  9, 19, 29, 39 and 49, otherwise as ``msdtgp``.
- ``cpu``: for the small presets on a few CPU cores. Adam 1e-3 with a 100-iteration linear
  warm-up and cosine decay to 2 %, LR patch 32, batch 4, Charbonnier loss, EMA 0.999, gradient
  clipping at 1.0, 5000 iterations. Chosen by short CPU sweeps (600–1200 iterations, see
  ``docs/training.md``): at equal CPU time, more small-batch iterations learned fastest, and
  1e-3 beat 5e-4 and 2e-3 for the residual small presets.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from satvsr_cli.errors import InputError, ModelError
from satvsr_cli.train.degrade import DegradationConfig, check_config

SourceKind = Literal["auto", "jilin", "images"]
Stretch = Literal["auto", "range", "percentile"]
Drift = Literal["constant", "random_walk", "mixed"]
Schedule = Literal["multistep", "cosine", "constant"]
Loss = Literal["l1", "charbonnier"]
Amp = Literal["none", "bf16", "fp16"]
ExportWhich = Literal["final", "best"]

RECIPES: tuple[str, ...] = ("msdtgp", "lgtd", "cpu")


@dataclass(frozen=True)
class SourceConfig:
    """One training source: a Jilin-189 layout folder, or single images / GeoTIFFs to animate."""

    path: str
    kind: SourceKind = "auto"  # auto: a folder with GT/ (or train/GT/) is Jilin, else images
    weight: float = 1.0  # relative share of training samples drawn from this source
    gsd_factor: float | None = None  # images only; None → synth.gsd_factor
    bands: tuple[int, ...] | None = None  # images only, 1-based; None → synth.bands
    stretch: Stretch | None = None  # images only; None → synth.stretch


@dataclass(frozen=True)
class SynthConfig:
    """How clips are synthesised from single images (see :mod:`satvsr_cli.train.synth`)."""

    gsd_factor: float = 1.0  # downsample images by this first (3 for UC Merced 0.3 m → ~1 m)
    bands: tuple[int, ...] | None = None  # 1-based band indices for GeoTIFFs; None → first three
    stretch: Stretch = "auto"  # auto: uint8 as is, anything else a per-band percentile stretch
    percentiles: tuple[float, float] = (1.0, 99.0)  # for the percentile stretch
    drift: Drift = "mixed"  # platform motion: constant velocity, random walk, or both
    max_speed: float = 1.5  # constant-velocity part, LR px per frame (uniform 0..max)
    jitter: float = 0.25  # random-walk part, std of the per-frame step in LR px (clipped at 3σ)
    object_prob: float = 0.5  # chance that a clip gets moving objects
    max_objects: int = 4  # 1..max small vehicles (soft-edged rectangles) when it does
    object_speed: float = 1.0  # object speed over the ground, LR px per frame (uniform 0..max)
    blur: float = 0.0  # optional Gaussian blur σ (HR px) before the ×1/4; 0 = off (exact bicubic)
    noise: float = 0.0  # optional Gaussian noise σ (grey levels) on LR; 0 = off


@dataclass(frozen=True)
class DataConfig:
    """Training and validation data, crops and augmentation."""

    sources: tuple[SourceConfig, ...] = ()
    val: tuple[str, ...] = ()  # Jilin-layout roots scored with the benchmark code
    patch: int = 32  # LR patch side; GT patch is 4×
    patch_multiple: int = 4  # a source too small for `patch` uses the largest multiple of this
    temporal_padding: Literal["centre", "reflect", "replicate"] = "centre"  # as the papers
    vflip: bool = True  # papers: three independent coin flips
    hflip: bool = True
    rot180: bool = True
    rot90: bool = False  # option: transpose (with the flips: all 8 dihedral transforms)
    reverse: bool = False  # option: temporal reversal of the window
    num_workers: int = 0  # 0 = build batches in the training process (best on 2 cores)
    cache: Literal["auto", "memory", "disk"] = "auto"  # Jilin frames: decode once, or per sample
    cache_gib: float = 4.0  # auto: keep decoded frames in memory up to this size


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, loss and loop settings."""

    iters: int | None = None  # total iterations; None → epochs × iterations per epoch
    epochs: float | None = None  # used only when iters is None
    batch: int = 4  # per process
    lr: float = 1e-3  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: Schedule = "cosine"
    milestone_epochs: tuple[float, ...] = ()  # multistep, in epochs (resolved to milestones)
    milestones: tuple[int, ...] = ()  # multistep, in iterations
    gamma: float = 0.1  # multistep factor
    warmup: int = 0  # linear warm-up iterations (cosine and multistep)
    min_lr_ratio: float = 0.02  # cosine floor, as a fraction of lr
    loss: Loss = "l1"
    charbonnier_eps: float = 1e-3
    # weight of the photometric alignment loss (networks that have one, e.g. LGTD): the
    # deformable offsets' mean shift must warp each frame onto the centre frame; 0 = off
    align_weight: float = 0.0
    amp: Amp = "none"  # CUDA only; ignored on CPU
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    ema: float = 0.0  # EMA decay; 0 = off (validation and export then use the raw weights)
    seed: int = 123
    deterministic: bool = False  # torch.use_deterministic_algorithms and seeded data
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads per process; 0 = torch's default (one per core)
    val_every: int | None = None  # None → once per epoch
    val_max_frames: int | None = None  # per clip, to keep CPU validation cheap
    log_every: int = 20
    ckpt_every: int = 500
    keep_last: int = 3
    export: ExportWhich = "final"  # which weights the run exports: the last or the best-validated
    init: str | None = None  # start from these weights (a shipped id or a .safetensors file)


@dataclass(frozen=True)
class ModelConfig:
    """The network: a registry name and keyword overrides for ``build_model``."""

    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; saved resolved in the run folder and every checkpoint."""

    recipe: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def recipe(name: str) -> RunConfig:
    """The named preset (``msdtgp``, ``lgtd`` or ``cpu``) with no model and no data."""
    paper_data = DataConfig(vflip=True, hflip=True, rot180=True, rot90=False, reverse=False)
    if name == "msdtgp":
        return RunConfig(
            recipe=name,
            data=replace(paper_data, patch=32),
            train=TrainConfig(
                epochs=50, batch=1, lr=8e-5, schedule="multistep", milestone_epochs=(24, 49),
                gamma=0.1, loss="l1", ema=0.0, grad_clip=0.0, log_every=100, ckpt_every=5000,
            ),
        )
    if name == "lgtd":
        return RunConfig(
            recipe=name,
            data=replace(paper_data, patch=64),
            train=TrainConfig(
                epochs=50, batch=4, lr=1e-4, schedule="multistep",
                milestone_epochs=(9, 19, 29, 39, 49), gamma=0.5, loss="l1", ema=0.0,
                grad_clip=0.0, log_every=100, ckpt_every=2000,
            ),
        )
    if name == "cpu":
        return RunConfig(
            recipe=name,
            data=DataConfig(patch=32),
            train=TrainConfig(
                iters=5000, batch=4, lr=1e-3, schedule="cosine", warmup=100, min_lr_ratio=0.02,
                loss="charbonnier", ema=0.999, grad_clip=1.0, val_every=1000, log_every=50,
                ckpt_every=500, keep_last=3,
            ),
        )
    raise InputError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")


def default_recipe(model: str) -> str:
    """The recipe that fits a network: its paper's for a paper configuration, else ``cpu``."""
    try:
        from satvsr_cli.models import get_spec

        spec = get_spec(model)
    except ModelError:
        return "cpu"
    return spec.family if spec.paper and spec.family in RECIPES else "cpu"


# --------------------------------------------------------------------------- coercion

T = TypeVar("T")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a TOML/JSON/``--set`` value to the field type ``tp`` or raise a one-line error."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise InputError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.replace(":", ",").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise InputError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{key}: expected a table, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"{key}: expected a table, got {value!r}")
        return _build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no",
                                                        "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise InputError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise InputError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                f = math.nan
            if f.is_integer():
                return int(f)
        raise InputError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise InputError(f"{key}: expected a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(f):
            raise InputError(f"{key}: expected a finite number, got {value!r}")
        return f
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InputError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if tp is Any:
        return value
    raise InputError(f"{key}: unsupported value {value!r}")  # pragma: no cover


def _build(cls: type[T], values: Mapping[str, Any], prefix: str, base: T | None = None) -> T:
    """Build (or update ``base`` of) dataclass ``cls`` from a mapping, checking every key."""
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in names:
            raise InputError(f"unknown config key {key!r}; known: {', '.join(sorted(names))}")
        tp = hints[k]
        if k == "sources":
            items = v if isinstance(v, list | tuple) else [v]
            kwargs[k] = tuple(
                parse_source(s) if isinstance(s, str) else _build(SourceConfig, s, key)
                for s in items
            )
        elif base is not None and isinstance(tp, type) and dataclasses.is_dataclass(tp) \
                and isinstance(v, Mapping):
            kwargs[k] = _build(tp, v, key, getattr(base, k))
        elif base is not None and get_origin(tp) is dict:  # model.kwargs: update, not replace
            kwargs[k] = {**getattr(base, k), **_coerce(v, tp, key)}
        else:
            kwargs[k] = _coerce(v, tp, key)
    try:
        return replace(base, **kwargs) if base is not None else cls(**kwargs)  # type: ignore[type-var]
    except TypeError as exc:
        raise InputError(f"{prefix or 'config'}: {exc}") from None


def merge(base: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``base`` updated with a nested mapping (a parsed config file)."""
    return _build(RunConfig, values, "", base)


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``--set key=value`` as a TOML value, else keep the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_key(cfg: RunConfig, key: str, value: Any) -> RunConfig:
    """Return ``cfg`` with the dotted ``key`` (e.g. ``train.lr``) set to ``value``."""
    parts = key.strip().split(".")
    if not all(parts):
        raise InputError(f"bad config key {key!r}")
    if parts[0] == "model" and len(parts) >= 2 and parts[1] not in ("name", "kwargs"):
        parts = ["model", "kwargs", *parts[1:]]  # --set model.nf=32 → a build_model override
    if parts[:2] == ["model", "kwargs"] and len(parts) == 3:
        kwargs = dict(cfg.model.kwargs)
        kwargs[parts[2]] = value
        return replace(cfg, model=replace(cfg.model, kwargs=kwargs))
    nested: Any = value
    for p in reversed(parts[1:]):
        nested = {p: nested}
    return merge(cfg, {parts[0]: nested})


def apply_sets(cfg: RunConfig, sets: list[str] | tuple[str, ...]) -> RunConfig:
    """Apply ``KEY=VALUE`` strings in order."""
    for item in sets:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        cfg = set_key(cfg, k, parse_value(v.strip()))
    return cfg


_SOURCE_KEYS = {"kind", "weight", "gsd", "gsd_factor", "bands", "stretch"}


def parse_source(spec: str) -> SourceConfig:
    """Parse a ``--data`` value: ``PATH[,key=value...]``.

    Keys: ``kind=jilin|images``, ``weight=W``, ``gsd=F`` (alias ``gsd_factor``), ``bands=3:2:1``
    and ``stretch=range|percentile|auto``. Example:
    ``../shared/data/images/ucmerced,gsd=3,weight=0.5``.
    """
    parts = spec.split(",")
    opts: dict[str, Any] = {}
    while len(parts) > 1 and "=" in parts[-1] and parts[-1].split("=", 1)[0].strip() in _SOURCE_KEYS:
        k, v = parts.pop().split("=", 1)
        k = "gsd_factor" if k.strip() == "gsd" else k.strip()
        opts[k] = v.strip()
    path = ",".join(parts).strip()
    if not path:
        raise InputError(f"--data {spec!r}: no path")
    return _build(SourceConfig, {"path": path, **opts}, "data.sources")


# --------------------------------------------------------------------------- (de)serialisation


def to_dict(cfg: Any) -> Any:
    """A JSON-ready nested dict of a config (tuples become lists)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    return cfg


def from_dict(values: Mapping[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from :func:`to_dict` output."""
    return _build(RunConfig, values, "")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML, JSON or YAML config file into a nested dict."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file not found")
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            with open(p, "rb") as f:
                data: Any = tomllib.load(f)
        elif suffix == ".json":
            data = json.loads(p.read_text())
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError(f"{p}: YAML configs need PyYAML; use TOML instead") from None
            data = yaml.safe_load(p.read_text())
        else:
            raise InputError(f"{p}: config must be .toml, .json or .yaml")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot parse config ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: config is not text") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: config must be a table at the top level")
    return data


def validate(cfg: RunConfig) -> None:
    """Check value ranges that the types cannot express; raise one-line errors."""
    t, d, s = cfg.train, cfg.data, cfg.synth
    checks: list[tuple[bool, str]] = [
        (bool(cfg.model.name), "no network: pass --model NAME"),
        (d.patch >= 4, f"data.patch must be ≥ 4, got {d.patch}"),
        (d.patch_multiple >= 1, "data.patch_multiple must be ≥ 1"),
        (d.num_workers >= 0, "data.num_workers must be ≥ 0"),
        (t.threads >= 0, "train.threads must be ≥ 0"),
        (t.batch >= 1, f"train.batch must be ≥ 1, got {t.batch}"),
        (t.lr > 0, "train.lr must be > 0"),
        (t.iters is None or t.iters >= 1, "train.iters must be ≥ 1"),
        (t.epochs is None or t.epochs > 0, "train.epochs must be > 0"),
        (t.iters is not None or t.epochs is not None, "give train.iters (--iters) or train.epochs"),
        (0.0 <= t.ema < 1.0, "train.ema must be in [0, 1)"),
        (t.grad_clip >= 0, "train.grad_clip must be ≥ 0"),
        (t.align_weight >= 0, "train.align_weight must be ≥ 0"),
        (t.warmup >= 0, "train.warmup must be ≥ 0"),
        (0 <= t.min_lr_ratio <= 1, "train.min_lr_ratio must be in [0, 1]"),
        (t.val_every is None or t.val_every >= 1, "train.val_every must be ≥ 1"),
        (t.val_max_frames is None or t.val_max_frames >= 1, "train.val_max_frames must be ≥ 1"),
        (t.log_every >= 1, "train.log_every must be ≥ 1"),
        (t.ckpt_every >= 1, "train.ckpt_every must be ≥ 1"),
        (t.keep_last >= 1, "train.keep_last must be ≥ 1"),
        (s.gsd_factor >= 1.0, "synth.gsd_factor must be ≥ 1"),
        (s.max_speed >= 0 and s.jitter >= 0 and s.object_speed >= 0, "synth speeds must be ≥ 0"),
        (0 <= s.object_prob <= 1, "synth.object_prob must be in [0, 1]"),
        (s.max_objects >= 0, "synth.max_objects must be ≥ 0"),
        (s.blur >= 0 and s.noise >= 0, "synth.blur and synth.noise must be ≥ 0"),
        (0 <= s.percentiles[0] < s.percentiles[1] <= 100, "synth.percentiles must be 0 ≤ lo < hi ≤ 100"),
    ]
    for src in d.sources:
        checks.append((src.weight > 0, f"{src.path}: weight must be > 0"))
        checks.append((src.gsd_factor is None or src.gsd_factor >= 1.0,
                       f"{src.path}: gsd factor must be ≥ 1"))
        checks.append((src.bands is None or all(b >= 1 for b in src.bands),
                       f"{src.path}: bands are 1-based"))
    checks.append((s.bands is None or all(b >= 1 for b in s.bands), "synth.bands are 1-based"))
    for ok, msg in checks:
        if not ok:
            raise InputError(msg)
    check_config(cfg.degradation)


def build_config(
    *,
    model: str | None = None,
    recipe_name: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    """Resolve recipe → config file → ``overrides`` (dotted keys) → ``--set`` strings.

    The recipe is ``recipe_name``, else the file's ``recipe`` key, else the one that fits the
    model (:func:`default_recipe`).
    """
    file_values = read_config_file(config_file) if config_file else {}
    name = model or (file_values.get("model") or {}).get("name") or ""
    rname = recipe_name or file_values.get("recipe") or (default_recipe(name) if name else "cpu")
    cfg = recipe(str(rname))
    if file_values:
        cfg = merge(cfg, {k: v for k, v in file_values.items() if k != "recipe"})
    if model:
        cfg = replace(cfg, model=replace(cfg.model, name=model))
    for key, value in (overrides or {}).items():
        cfg = set_key(cfg, key, value)
    return apply_sets(cfg, sets)


def get_key(cfg: RunConfig, key: str) -> Any:
    """Read a dotted key (``train.lr``) from a config."""
    obj: Any = cfg
    for part in key.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
    return obj


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten :func:`to_dict` output to dotted keys (lists stay values)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = d
    return out


__all__ = [
    "RECIPES",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "SourceConfig",
    "SynthConfig",
    "TrainConfig",
    "apply_sets",
    "build_config",
    "default_recipe",
    "flatten",
    "from_dict",
    "get_key",
    "merge",
    "parse_source",
    "parse_value",
    "read_config_file",
    "recipe",
    "set_key",
    "to_dict",
    "validate",
]
