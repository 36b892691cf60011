"""The shared backend suite, for `norse` in its default (exact) mode."""

from nirbridge.testing import BackendConformance
from nirbridge_norse import NorseBackend


class TestNorseConformance(BackendConformance):
    backend = NorseBackend()
