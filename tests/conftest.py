"""Shared test set-up: one torch thread (much faster than two on a shared 2-core CI machine)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield
