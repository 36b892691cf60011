import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # rockpool_support
pytest.importorskip("rockpool")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)
