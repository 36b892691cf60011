import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # sj_support
pytest.importorskip("spikingjelly")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)
