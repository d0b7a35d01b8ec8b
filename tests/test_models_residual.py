import pytest
import torch
import torch.nn.functional as F

from satvsr_cli.models import build_model, tiny_overrides


@pytest.mark.parametrize("name", ["msdtgp_small", "lgtd_small"])
def test_residual_untrained_equals_bicubic_and_learns(name):
    torch.manual_seed(0)
    model = build_model(name, **{**tiny_overrides(name), "residual": True}).eval()
    x = torch.rand(1, 5, 3, 8, 12)  # multiples of 4: no internal padding
    with torch.no_grad():
        out = model(x)
    bicubic = F.interpolate(x[:, 2], scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, bicubic)
    # one optimiser step moves the output away from bicubic, and every parameter then trains
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.rand(1, 3, 32, 48)
    for _ in range(2):
        opt.zero_grad()
        F.l1_loss(model(x), target).backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(x), bicubic)
        # the split path used by the engine keeps the skip
        feats = model.extract(x.flatten(0, 1)).unflatten(0, (1, 5))
        torch.testing.assert_close(model.forward_window(x, feats), model(x))


def test_paper_configs_have_no_skip():
    for name in ("msdtgp", "lgtd_lite"):
        with torch.device("meta"):
            assert build_model(name).residual is False
    assert build_model("msdtgp_small").residual is True
    assert build_model("lgtd_small").residual is True
