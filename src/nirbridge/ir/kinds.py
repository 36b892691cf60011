"""The one list of what each NIR node type is, by type name.

    neurons      I, IF, LI, LIF, CubaLI, CubaLIF     (state v; CubaLI/CubaLIF also a current I)
    spiking      IF, LIF, CubaLIF, Threshold         (emit 0/1)
    stateless    Affine, Linear, Scale, Conv1d, Conv2d, Flatten, SumPool2d, AvgPool2d, Threshold
    layers       the stateless types and Delay (everything between the ports that is not a neuron)
    ports        Input, Output
"""

NEURON_TYPES = frozenset({"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"})
SPIKING_TYPES = frozenset({"IF", "LIF", "CubaLIF", "Threshold"})
SPIKING_NEURON_TYPES = NEURON_TYPES & SPIKING_TYPES
CURRENT_BASED_TYPES = frozenset({"CubaLI", "CubaLIF"})
STATELESS_TYPES = frozenset({"Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Threshold"})
LAYER_TYPES = STATELESS_TYPES | {"Delay"}
PORT_TYPES = frozenset({"Input", "Output"})
GRAPH_TYPE = "NIRGraph"
#: the types whose output a simulation can record as states (v, I, spikes)
RECORDED_TYPES = NEURON_TYPES | SPIKING_TYPES
