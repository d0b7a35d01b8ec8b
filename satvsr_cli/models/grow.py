"""Grow a trained network into a larger one of the same family without changing its output.

The quality preset ``lgtd_base`` keeps ``lgtd_small``'s trunk and widens and deepens its
reconstruction head. Training it from scratch on a 2-core CPU would take many hours before it
even matched the small preset; grown from trained small weights it starts exactly where they
are and only has to learn what the extra capacity adds (function-preserving growth, as in
Net2Net, Chen et al. 2016):

- a tensor of the same shape is copied;
- a wider tensor gets the old one in its leading corner. New *output* channels (rows of a conv
  weight, entries of a bias) start at zero, so the new feature maps are exactly zero; new
  *input* columns keep their fresh initialisation (they multiply those zero maps, so they change
  nothing at first but give the new channels a gradient);
- a residual block the small network does not have starts as the identity: its second conv is
  zero and its PReLU slope is 1, so ``act(conv2(act(conv1(x))) + x) == x``.

Anything else (a smaller tensor, a missing tensor outside a residual block) is refused.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from satvsr_cli.models.blocks import ResnetBlock

__all__ = ["GrowError", "grow_into"]


class GrowError(ValueError):
    """The small network's tensors cannot be embedded in the large one."""


def _new_resblocks(net: nn.Module, have: set[str]) -> dict[str, ResnetBlock]:
    """The residual blocks of ``net`` none of whose tensors are in ``have``, by name prefix."""
    found: dict[str, ResnetBlock] = {}
    for name, mod in net.named_modules():
        if isinstance(mod, ResnetBlock):
            keys = [f"{name}.{k}" for k, _ in mod.named_parameters()]
            if not any(k in have for k in keys):
                found[name] = mod
    return found


@torch.no_grad()
def grow_into(large: nn.Module, small_state: dict[str, Tensor]) -> dict[str, list[str]]:
    """Embed ``small_state`` (a trained smaller network's state dict) into ``large`` in place.

    ``large`` must be freshly built (its initialisation supplies the new input columns).

    Returns:
        What was done: ``copied``, ``widened`` and ``identity`` (new residual blocks) names.

    Raises:
        GrowError: a tensor is smaller in ``large``, has another rank, or is missing from the
            small state outside a new residual block; or the small state has a tensor
            ``large`` lacks.
    """
    target = large.state_dict()
    extra = sorted(set(small_state) - set(target))
    if extra:
        raise GrowError(f"the larger network has no tensor {extra[0]!r}"
                        f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}")
    new_blocks = _new_resblocks(large, set(small_state))
    report: dict[str, list[str]] = {"copied": [], "widened": [], "identity": sorted(new_blocks)}
    for name, value in target.items():
        if name in small_state:
            old = small_state[name]
            if old.shape == value.shape:
                value.copy_(old)
                report["copied"].append(name)
                continue
            if old.dim() != value.dim() or any(o > n for o, n in zip(old.shape, value.shape,
                                                                      strict=True)):
                raise GrowError(f"{name}: cannot embed shape {tuple(old.shape)} in "
                                f"{tuple(value.shape)}")
            if old.dim() >= 1:
                value[old.shape[0]:] = 0  # new output channels start at exactly zero
            value[tuple(slice(0, s) for s in old.shape)] = old
            report["widened"].append(name)
        elif not any(name.startswith(p + ".") for p in new_blocks):
            raise GrowError(f"{name}: not in the smaller network and not part of a new "
                            "residual block")
    for block in new_blocks.values():
        nn.init.zeros_(block.conv2.weight)
        if block.conv2.bias is not None:
            nn.init.zeros_(block.conv2.bias)
        act = block.act
        if not isinstance(act, nn.PReLU):
            raise GrowError("a new residual block needs a PReLU to start as the identity")
        nn.init.ones_(act.weight)
    large.load_state_dict(target, strict=True)
    return report
