"""Shared test settings: deterministic, single-threaded torch so that timings do not fight."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    yield
