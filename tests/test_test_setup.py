"""The switches of the test setup itself (root conftest.py): CI's deterministic Hypothesis
profile, and NIR paper fixtures that CI requires rather than skips."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def test_hypothesis_is_derandomized_unless_told_to_explore():
    explore = os.environ.get("NIRBRIDGE_HYPOTHESIS") == "explore"
    assert settings().derandomize is not explore


def test_missing_fixtures_skip_and_fail_when_required(pytester, monkeypatch):
    """Outside CI a missing fixture folder skips the tests that read it; with
    NIRBRIDGE_REQUIRE_FIXTURES=1 (set by .ci/run) the same run fails and says why."""
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_paper="def test_reads_the_paper(fixtures_dir):\n    assert fixtures_dir.is_dir()\n")
    monkeypatch.delenv("NIRBRIDGE_REQUIRE_FIXTURES", raising=False)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)
    monkeypatch.setenv("NIRBRIDGE_REQUIRE_FIXTURES", "1")
    required = pytester.runpytest("-p", "no:cacheprovider")
    assert required.ret != 0
    required.assert_outcomes(errors=1)
    required.stdout.fnmatch_lines(["*NIR paper fixtures not found at *NIRBRIDGE_REQUIRE_FIXTURES=1 requires them*"])


def test_ci_requires_the_fixtures():
    ci = (ROOT_CONFTEST.parent / ".ci" / "run").read_text()
    assert "NIRBRIDGE_REQUIRE_FIXTURES=1 make test" in ci
