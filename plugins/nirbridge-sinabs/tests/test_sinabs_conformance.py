from nirbridge.testing import BackendConformance
from nirbridge_sinabs import SinabsBackend


class TestSinabsConformance(BackendConformance):
    backend = SinabsBackend()
