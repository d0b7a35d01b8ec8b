"""Catalogue of the registered networks for `satvsr models` (meta-device builds: no memory, no init)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from satvsr_cli.models import build_model, get_spec, list_models
from satvsr_cli.models.flops import count_gmac


@dataclass(frozen=True)
class ModelRow:
    """One line of `satvsr models`."""

    name: str
    family: str
    params: int
    frames: int
    scale: int
    gmac: float | None
    weights: tuple[str, ...]
    description: str


def describe_models(lr_size: tuple[int, int] = (160, 160), macs: bool = True) -> list[ModelRow]:
    """Describe every registered network; parameters and MACs come from a meta-device build."""
    from satvsr_cli.weights import shipped_for, weights_id

    rows = []
    for name in list_models():
        spec = get_spec(name)
        with torch.device("meta"):
            model = build_model(name).eval()
        params = sum(p.numel() for p in model.parameters())
        gmac = count_gmac(model, *lr_size) if macs else None
        rows.append(
            ModelRow(name, spec.family, params, spec.frames, spec.scale, gmac,
                     tuple(weights_id(p) for p in shipped_for(name)), spec.description)
        )
    return rows
