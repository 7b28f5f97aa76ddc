"""One torch thread for the monitor tests: their models are tiny, and on a shared 2-core machine a second
thread makes each small kernel wait (measured: a tiny MLP's backward took 20 ms with 2 threads, 1.2 ms with 1)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
