import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Runs set ``train.threads``, which sets torch's global thread count; put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
