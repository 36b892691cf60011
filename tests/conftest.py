"""Shared test setup: `import strategies` works from any test file; `builtin_backends_only`
keeps installed plugins out of the registry for one test. (`fixtures_dir`, the NIR paper
artefacts, is in the root conftest.py, shared with the plugins.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def builtin_backends_only(monkeypatch):
    """Only the built-in numpy backend, in-process and in subprocesses (fast, deterministic)."""
    from nirbridge.backends import registry as plugins

    monkeypatch.setenv(plugins.DISABLE_ENV, "1")
    plugins.reset()
    yield
    plugins.reset()
