import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # corpus_harness and the model files

pytest.importorskip("nirbridge_snntorch")
pytest.importorskip("nirbridge_norse")
