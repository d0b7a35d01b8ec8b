"""Shared test set-up: one torch thread (much faster than two on a shared 2-core CI machine)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def _torch_backend_by_default(monkeypatch):
    """``--backend auto`` means torch in tests (OpenVINO converts per tile shape, seconds per
    network); the OpenVINO tests ask for it explicitly. One thread, as above."""
    monkeypatch.setenv("SATVSR_BACKEND", "torch")
    monkeypatch.setenv("SATVSR_THREADS", "1")
