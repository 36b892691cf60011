from nirbridge.testing import BackendConformance
from nirbridge_snntorch import SnnTorchBackend


class TestSnnTorchConformance(BackendConformance):
    backend = SnnTorchBackend()
