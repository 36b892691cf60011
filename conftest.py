"""Test-wide setup shared by the core and plugin suites.

Hypothesis runs derandomized by default (profile `ci`): every run of the suite draws the same
examples, so a clean clone passes or fails the same way each time. `NIRBRIDGE_HYPOTHESIS=explore`
draws fresh examples (use it to hunt for new counterexamples, then pin them with `@example`).

Every test starts from the same torch random state whatever ran before it (seed 0), so data
drawn with torch's global generator does not depend on test order or selection.

`fixtures_dir` is the NIR paper's artefacts, `<repo>/../shared/fixtures/nir-paper`: a test
that uses it is skipped when the folder is absent, and fails instead when
`NIRBRIDGE_REQUIRE_FIXTURES=1` (CI sets it: CI always has the folder, so a skip there would
hide the outside-truth tests).
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("NIRBRIDGE_HYPOTHESIS", "ci"))

pytest_plugins = ["pytester"]  # tests of this file's own switches

NIR_PAPER = Path(__file__).resolve().parent.parent / "shared" / "fixtures" / "nir-paper"
REQUIRE_FIXTURES = "NIRBRIDGE_REQUIRE_FIXTURES"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The NIR paper fixture folder; skips the test when it is absent (fails with
    NIRBRIDGE_REQUIRE_FIXTURES=1)."""
    if not NIR_PAPER.is_dir():
        message = f"NIR paper fixtures not found at {NIR_PAPER}"
        if os.environ.get(REQUIRE_FIXTURES) == "1":
            pytest.fail(f"{message}, and {REQUIRE_FIXTURES}=1 requires them", pytrace=False)
        pytest.skip(message)
    return NIR_PAPER


@pytest.fixture(autouse=True)
def _torch_seed():
    torch = sys.modules.get("torch")  # never imported here: the core's tests run without torch
    if torch is not None:
        torch.manual_seed(0)
