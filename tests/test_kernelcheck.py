"""engine/kernelcheck.py: bf16 convolutions that this CPU gets wrong run in fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from satvsr_cli.engine import kernelcheck
from satvsr_cli.engine.backend import OpenVINORunner, TorchRunner, openvino_available

CPU = torch.device("cpu")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, 1, 1)
        self.down = nn.Conv2d(8, 8, 8, 4, 2)  # the configuration the AMX kernel got wrong
        self.b = nn.Conv2d(8, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.down(self.a(x)))


@pytest.fixture
def pretend_down_is_faulty(monkeypatch):
    """Make the check flag exactly the 8-channel 8×8 layer, whatever this CPU does."""
    monkeypatch.setattr(kernelcheck, "_verdicts", {})
    monkeypatch.setattr(kernelcheck, "_bf16_is_faulty",
                        lambda m: m.in_channels == 8 and m.kernel_size == (8, 8))


def _dtypes(net: nn.Module, run) -> dict[str, torch.dtype]:
    seen: dict[str, torch.dtype] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.dtype))
             for n, m in net.named_children()]
    run()
    for h in hooks:
        h.remove()
    return seen


def test_torch_runner_keeps_the_faulty_layer_in_fp32(pretend_down_is_faulty):
    net = Net().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        ref_down = net.down(net.a(x))
        runner = TorchRunner(net, CPU, "bf16", channels_last=False)
        seen = _dtypes(net, lambda: runner.forward(x))
        kept = net.down(net.a(x).bfloat16())  # a bf16 input is promoted, the layer runs fp32
    assert runner.fp32_layers == ["down"] and "1 conv kept fp32" in runner.describe()
    assert seen == {"a": torch.bfloat16, "down": torch.float32, "b": torch.bfloat16}
    assert kept.dtype == torch.float32
    assert (kept - ref_down).abs().max() < 0.05  # only the input's bf16 rounding differs


def test_fp32_runner_checks_nothing(pretend_down_is_faulty):
    runner = TorchRunner(Net(), CPU, "fp32", channels_last=False)
    assert runner.fp32_layers == [] and "kept" not in runner.describe()


def test_the_check_passes_correct_kernels_and_remembers_its_verdicts(monkeypatch):
    monkeypatch.setattr(kernelcheck, "_verdicts", {})
    calls = []
    real = kernelcheck._bf16_is_faulty

    def counting(m):
        calls.append(m)
        return real(m)

    monkeypatch.setattr(kernelcheck, "_bf16_is_faulty", counting)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.Conv2d(16, 16, 3, 1, 1),
                        nn.Conv2d(16, 16, 3, 1, 1), nn.ConvTranspose2d(16, 8, 8, 4, 2))
    assert kernelcheck.faulty_bf16_convs(net) == []  # ordinary layers: bf16 within rounding
    assert kernelcheck.faulty_bf16_convs(net) == []
    assert len(calls) == 3  # two identical 16→16 layers and the second call reuse verdicts


def test_the_check_flags_a_kernel_that_is_wrong(monkeypatch):
    monkeypatch.setattr(kernelcheck, "_verdicts", {})
    conv = nn.Conv2d(4, 4, 3, 1, 1)
    real_forward = nn.Conv2d.forward

    def broken(self, x):  # a kernel that ignores its input under autocast, like the AMX fault
        out = real_forward(self, x)
        return out.flip(-1) if torch.is_autocast_enabled("cpu") else out

    monkeypatch.setattr(nn.Conv2d, "forward", broken)
    assert kernelcheck.faulty_bf16_convs(nn.Sequential(conv)) == ["0"]


@pytest.mark.skipif(not openvino_available(), reason="OpenVINO not installed")
def test_openvino_runs_fp32_when_a_kernel_is_faulty(pretend_down_is_faulty, tmp_path, monkeypatch):
    monkeypatch.setenv("SATVSR_CACHE_DIR", str(tmp_path))
    net = Net().eval()
    x = torch.rand(1, 3, 32, 32)
    runner = OpenVINORunner(net, "bf16")
    assert runner.faulty == ["down"] and runner.precision == "fp32"
    assert "bf16 refused" in runner.describe()
    with torch.inference_mode():
        assert (runner.forward(x) - net(x)).abs().max() < 1e-4


def test_benchmark_autocast_keeps_the_faulty_layer_in_fp32(pretend_down_is_faulty):
    from satvsr_cli.eval.runtime import autocast_for

    net = Net().eval()
    with torch.inference_mode(), autocast_for(CPU, "bf16", net):
        seen = _dtypes(net, lambda: net(torch.rand(1, 3, 32, 32)))
    assert seen == {"a": torch.bfloat16, "down": torch.float32, "b": torch.bfloat16}


def test_the_bf16_record_names_the_layers_that_ran_fp32(tmp_path, monkeypatch):
    from satvsr_cli.eval.precision import measure_precision
    from satvsr_cli.models import TINY_OVERRIDES, build_model
    from satvsr_cli.weights import save_weights
    from tests.test_benchmark import make_dataset

    monkeypatch.setattr(kernelcheck, "_verdicts", {})
    monkeypatch.setattr(kernelcheck, "_bf16_is_faulty", lambda m: m.kernel_size == (8, 8))
    data = make_dataset(tmp_path / "dev", clips=(("000", 5, True, 3),), size=32) / "eval"
    torch.manual_seed(0)
    net = build_model("msdtgp_small", **TINY_OVERRIDES["msdtgp_small"])
    path = save_weights(net, tmp_path / "w.safetensors", network="msdtgp_small",
                        config=TINY_OVERRIDES["msdtgp_small"], data={}, recipe={}, metrics={})
    block = measure_precision(path, [data], backends=["torch"], max_frames=2)
    expected = [n for n, m in net.named_modules()
                if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.kernel_size == (8, 8)]
    assert expected and block["bf16_faulty_convs"] == expected
