from nirbridge.testing import BackendConformance
from nirbridge_rockpool import RockpoolBackend


class TestRockpoolConformance(BackendConformance):
    backend = RockpoolBackend()
