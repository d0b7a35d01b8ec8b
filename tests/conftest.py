"""Shared test set-up: one torch thread (much faster than two on a shared 2-core CI machine)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _sigint_delivered():
    """Ctrl-C tests need SIGINT to reach Python: a suite started as a background job of a
    non-interactive shell inherits SIGINT ignored (and so do the subprocesses it starts)."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


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
