"""Catalogue of the registered networks for `satvsr models` (meta-device builds: no memory, no init)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from satvsr_cli.models import build_model, get_spec, list_models


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


def count_gmac(model: torch.nn.Module, lr_size: tuple[int, int], frames: int = 5) -> float:
    """GMAC per output frame (FlopCounterMode FLOPs / 2) at LR ``(h, w)``, counted on meta tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.zeros(1, frames, 3, lr_size[0], lr_size[1], device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2e9


def describe_models(lr_size: tuple[int, int] = (160, 160), macs: bool = True) -> list[ModelRow]:
    """Describe every registered network; parameters and MACs come from a meta-device build."""
    from satvsr_cli.weights import shipped_for

    rows = []
    for name in list_models():
        spec = get_spec(name)
        with torch.device("meta"):
            model = build_model(name).eval()
        params = sum(p.numel() for p in model.parameters())
        gmac = count_gmac(model, lr_size, spec.frames) if macs else None
        rows.append(
            ModelRow(name, spec.family, params, spec.frames, spec.scale, gmac,
                     tuple(p.name for p in shipped_for(name)), spec.description)
        )
    return rows
