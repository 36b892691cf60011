import os
import sys
from pathlib import Path

# XLA's CPU compiler contracts a * b + c into one fused multiply-add inside jit / lax.scan on
# CPUs that have FMA; without FMA instructions Spyx's own compiled run (spyx.nn.run) rounds
# every operation, as the reference does, so the tests compare Spyx and nirbridge bit for bit.
# Must be set before JAX starts its CPU backend (the first computation).
if "--xla_cpu_max_isa" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=SSE4_2").strip()

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # spyx_support
pytest.importorskip("spyx")
