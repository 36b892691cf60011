"""Test-wide setup shared by the core and plugin suites.

Hypothesis runs derandomized by default (profile `ci`): every run of the suite draws the same
examples, so a clean clone passes or fails the same way each time. `NIRBRIDGE_HYPOTHESIS=explore`
draws fresh examples (use it to hunt for new counterexamples, then pin them with `@example`).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("NIRBRIDGE_HYPOTHESIS", "ci"))
