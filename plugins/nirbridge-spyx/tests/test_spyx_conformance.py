from nirbridge.testing import BackendConformance
from nirbridge_spyx import SpyxBackend


class TestSpyxConformance(BackendConformance):
    backend = SpyxBackend()
