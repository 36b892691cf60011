"""Shared test setup: `import strategies` works from any test file; `fixtures_dir` gives the
NIR paper artefacts (`<repo>/../shared/fixtures/nir-paper`) or skips when they are absent;
`builtin_backends_only` keeps installed plugins out of the registry for one test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

NIR_PAPER = TESTS.parent.parent / "shared" / "fixtures" / "nir-paper"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The NIR paper fixture folder; the test is skipped when it is not there."""
    if not NIR_PAPER.is_dir():
        pytest.skip(f"NIR paper fixtures not found at {NIR_PAPER}")
    return NIR_PAPER


@pytest.fixture
def builtin_backends_only(monkeypatch):
    """Only the built-in numpy backend, in-process and in subprocesses (fast, deterministic)."""
    from nirbridge.backends import registry as plugins

    monkeypatch.setenv(plugins.DISABLE_ENV, "1")
    plugins.reset()
    yield
    plugins.reset()
