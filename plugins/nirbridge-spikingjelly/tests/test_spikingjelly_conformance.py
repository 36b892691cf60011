from nirbridge.testing import BackendConformance
from nirbridge_spikingjelly import SpikingJellyBackend


class TestSpikingJellyConformance(BackendConformance):
    backend = SpikingJellyBackend()
