"""The plugin's registration is light: listing and looking up backends imports neither JAX nor
Spyx (nor torch), and the backend is found for Spyx models."""

import subprocess
import sys

import numpy as np
import spyx.nn as snn
from flax import nnx

import nirbridge


def test_listing_imports_neither_jax_nor_spyx():
    code = ("import sys, nirbridge; records = nirbridge.backends(); assert 'spyx' in records, records; "
            "print(sorted(m for m in ('jax', 'spyx', 'flax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_a_spyx_model_finds_its_backend_and_no_torch_backend_claims_it():
    model = snn.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), snn.LIF((4,), beta=0.9, rngs=nnx.Rngs(0)))
    # convert finds the source backend: exactly one installed backend must accept the model
    graph = nirbridge.convert(model, to="nir", sample=np.zeros((1, 3), np.float32))
    assert nirbridge.check(model, to="numpy", sample=np.zeros((1, 3), np.float32)).source == "spyx"
    assert nirbridge.backends()["spyx"].load().accepts(nirbridge.convert(graph, to="spyx"))


def test_conformance_and_conversion_need_no_torch():
    """The conformance suite's helpers, a conversion to Spyx and its run: NumPy and JAX only,
    with torch made unimportable (Spyx's optional tonic data loaders then stay off)."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from nirbridge import Policy\n"
        "from nirbridge.compare import compare, recordable\n"
        "from nirbridge.conversion import plan, run\n"
        "from nirbridge.testing import BackendConformance, build_case, case_inputs\n"
        "from nirbridge_spyx import SpyxBackend\n"
        "b = SpyxBackend(); p = Policy.preset('spyx'); g = build_case('recurrent_cubalif', p); rec = recordable(g)\n"
        "x, ref = case_inputs('recurrent_cubalif', g, p, steps=20, batch=2, record=rec)\n"
        "res = run(b, plan(g, b, policy=p).build(), x, record=tuple(rec))\n"
        "assert all(c.ok and c.spike_diffs == 0 for c in compare(ref, res, g, rec).values())\n"
        "print(sys.modules['torch'] is None, 'jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"], out.stdout
