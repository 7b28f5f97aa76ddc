import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def group_config_type(monkeypatch):
    """The engine's GroupConfig; a stand-in with the same fields while the engine is not installed."""
    import surge_sweep_fakes

    return surge_sweep_fakes.group_config_type(monkeypatch)
