"""Hypothesis strategies for valid `nirbridge.Graph`s, for any test that needs graphs.

    graphs()                   any of the families below; spiking=True puts a spiking neuron
                               (IF, LIF, CubaLIF) where each family has its first neuron
    feedforward_graphs()       Input -> (Affine|Linear -> elementwise node)+ -> Output, with fan-in
    conv_graphs()              Conv1d/Conv2d -> neuron -> Sum/AvgPool2d -> Flatten -> dense chains
    recurrent_graphs()         a neuron layer with a recurrent dense edge (a cycle), self-loops
    nested_graphs()            recurrent blocks as nested NIRGraphs, up to two levels, dotted edges
    neuron_nodes(shape)        I, IF, LI, LIF, CubaLI, CubaLIF
    elementwise_nodes(shape)   neuron nodes plus Scale, Threshold, Delay
    dense_nodes(n_in, n_out)   Affine or Linear
    metadata()                 metadata dicts that survive save/load and nir.write/nir.read
    node_names()               names valid for both Graph and HDF5 (no '.', '/', NUL)

`nir_writable=True` fills the optional shapes (Conv `input_shape`, Flatten `input_type`)
that `nir.write` cannot store as None. Shapes are computed here independently of nirbridge
(conv sizes by counting window positions).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nirbridge.ir import (
    IF,
    LI,
    LIF,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Graph,
    I,
    Input,
    Linear,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)

FLOAT_DTYPES = (np.float32, np.float64, np.float16)
INT_DTYPES = (np.int64, np.int32)

_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/.")


def node_names() -> st.SearchStrategy[str]:
    """Node names: non-empty, any printable unicode except '.', '/' and NUL."""
    return st.text(_NAME_CHARS, min_size=1, max_size=10)


@lru_cache(maxsize=None)
def _names(n: int) -> st.SearchStrategy[list[str]]:
    return st.lists(node_names(), min_size=n, max_size=n, unique=True)


def _width(dtype) -> int:
    return np.dtype(dtype).itemsize * 8


@lru_cache(maxsize=None)
def float_arrays(shape, dtype, *, low=None, high=None) -> st.SearchStrategy[np.ndarray]:
    """Finite float arrays (subnormals, -0.0 and extremes included unless bounded), within
    the float32 range (valid graphs' parameters do not overflow the working dtype)."""
    limit = float(np.finfo(np.float32 if _width(dtype) >= 32 else dtype).max)
    low = -limit if low is None else low
    high = limit if high is None else high
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=_width(dtype))
    return hnp.arrays(dtype, shape, elements=elements)


def _positive(shape, dtype):
    return float_arrays(shape, dtype, low=2.0**-10, high=8.0)


# ----------------------------------------------------------------------------- metadata

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
_KEYS = st.text(_NAME_CHARS, min_size=1, max_size=8)
_SCALARS = st.one_of(
    _TEXT,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
)
_ARRAYS = hnp.arrays(
    st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint16, np.bool_]),
    hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3),
)
_STRING_LISTS = st.lists(_TEXT, min_size=1, max_size=3)


@lru_cache(maxsize=None)
def metadata(max_leaves: int = 6) -> st.SearchStrategy[dict]:
    """Flat or nested metadata: str, bool, int64, float, numeric arrays, lists of str, dicts."""
    leaves = st.one_of(_SCALARS, _ARRAYS, _STRING_LISTS)
    values = st.recursive(leaves, lambda inner: st.dictionaries(_KEYS, inner, max_size=3), max_leaves=max_leaves)
    return st.dictionaries(_KEYS, values, max_size=4)


@lru_cache(maxsize=None)
def _maybe_metadata():
    return st.one_of(st.just({}), metadata())


# ----------------------------------------------------------------------------- nodes


@st.composite
def neuron_nodes(draw, shape: tuple[int, ...], dtype=None, spiking: bool = False):
    """One of I, IF, LI, LIF, CubaLI, CubaLIF (IF, LIF, CubaLIF when `spiking`) with
    parameters of `shape`, one dtype per node."""
    dtype = dtype or draw(st.sampled_from(FLOAT_DTYPES))
    kind = draw(st.sampled_from([IF, LIF, CubaLIF] if spiking else [I, IF, LI, LIF, CubaLI, CubaLIF]))
    values = {
        "tau": _positive(shape, dtype),
        "tau_mem": _positive(shape, dtype),
        "tau_syn": _positive(shape, dtype),
        "r": float_arrays(shape, dtype, low=-10, high=10),
        "v_leak": float_arrays(shape, dtype, low=-1, high=1),
        "v_threshold": float_arrays(shape, dtype, low=0.125, high=2),
        "v_reset": float_arrays(shape, dtype, low=-1, high=1),
        "w_in": float_arrays(shape, dtype, low=-10, high=10),
    }
    fields = {k: draw(values[k]) for k in kind.float_fields}
    return kind(**fields, metadata=draw(_maybe_metadata()))


@st.composite
def elementwise_nodes(draw, shape: tuple[int, ...]):
    """A neuron node, Scale, Threshold or Delay acting elementwise on `shape`."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    choice = draw(st.sampled_from(["neuron", "Scale", "Threshold", "Delay"]))
    if choice == "neuron":
        return draw(neuron_nodes(shape, dtype))
    meta = draw(_maybe_metadata())
    if choice == "Scale":
        return Scale(scale=draw(float_arrays(shape, dtype)), metadata=meta)
    if choice == "Threshold":
        return Threshold(threshold=draw(float_arrays(shape, dtype)), metadata=meta)
    return Delay(delay=draw(float_arrays(shape, dtype, low=0, high=1)), metadata=meta)


@st.composite
def dense_nodes(draw, n_in: int, n_out: int):
    """Affine or Linear from n_in to n_out features."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    weight = draw(float_arrays((n_out, n_in), dtype))
    meta = draw(_maybe_metadata())
    if draw(st.booleans()):
        return Affine(weight=weight, bias=draw(float_arrays((n_out,), dtype)), metadata=meta)
    return Linear(weight=weight, metadata=meta)


def _int_array(draw, values) -> np.ndarray:
    return np.asarray(values, dtype=draw(st.sampled_from(INT_DTYPES)))


# ----------------------------------------------------------------------------- graphs


@st.composite
def feedforward_graphs(draw, max_layers: int = 3, spiking: bool = False):
    """Input -> (dense -> elementwise)+ -> Output; sometimes a second dense path into the first
    elementwise node (fan-in: its input is the sum), a spiking neuron when `spiking`."""
    layers = draw(st.integers(1, max_layers))
    sizes = draw(st.lists(st.integers(1, 5), min_size=layers + 1, max_size=layers + 1))
    names = draw(_names(2 * layers + 3))
    inp, out, extra = names[0], names[1], names[2]
    nodes = {inp: Input(shape=np.array(sizes[:1]), metadata=draw(_maybe_metadata()))}
    edges = []
    prev = inp
    for i in range(layers):
        dense, elem = names[3 + 2 * i], names[4 + 2 * i]
        nodes[dense] = draw(dense_nodes(sizes[i], sizes[i + 1]))
        nodes[elem] = draw(neuron_nodes((sizes[1],), spiking=True) if spiking and i == 0 else elementwise_nodes((sizes[i + 1],)))
        edges += [(prev, dense), (dense, elem)]
        if i == 0 and draw(st.booleans()):
            nodes[extra] = draw(dense_nodes(sizes[0], sizes[1]))
            edges += [(inp, extra), (extra, elem)]
        prev = elem
    nodes[out] = Output(shape=np.array(sizes[-1:]))
    edges.append((prev, out))
    return Graph(nodes=nodes, edges=draw(st.permutations(edges)), metadata=draw(_maybe_metadata()))


def _out_len(n: int, k: int, s: int, p: int, d: int) -> int:
    """Window positions of a kernel of span d*(k-1)+1 over n+2p inputs with step s (counted)."""
    span = d * (k - 1) + 1
    return len(range(0, n + 2 * p - span + 1, s))


@st.composite
def _conv(draw, dims: int, c_in: int, spatial: tuple[int, ...], nir_writable: bool):
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if c_in % g == 0]))
    c_out = groups * draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["int", "same", "valid"]))
    kernel, stride, padding, dilation, out = [], [], [], [], []
    for n in spatial:
        k = draw(st.integers(1, 3))
        d = draw(st.integers(1, 2))
        s = 1 if mode == "same" else draw(st.integers(1, 2))
        p = draw(st.integers(0, 1)) if mode == "int" else 0
        if d * (k - 1) + 1 > n + 2 * p:
            k, d = 1, 1
        kernel.append(k), stride.append(s), padding.append(p), dilation.append(d)
        out.append(n if mode == "same" else _out_len(n, k, s, p, d))

    def encode(values):  # one value for all dims (0-d) or one per dim
        if len(set(values)) == 1 and draw(st.booleans()):
            return _int_array(draw, values[0])
        return _int_array(draw, values)

    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    fields = dict(
        weight=draw(float_arrays((c_out, c_in // groups, *kernel), dtype, low=-2, high=2)),
        bias=draw(float_arrays((c_out,), dtype, low=-1, high=1)),
        stride=encode(stride),
        padding=mode if mode != "int" else encode(padding),
        dilation=encode(dilation),
        groups=_int_array(draw, groups),
        metadata=draw(_maybe_metadata()),
    )
    if nir_writable or draw(st.booleans()):
        fields["input_shape"] = _int_array(draw, spatial[0] if dims == 1 else list(spatial))
    node = Conv1d(**fields) if dims == 1 else Conv2d(**fields)
    return node, (c_out, *out)


@st.composite
def _pool(draw, shape: tuple[int, ...]):
    kernel, stride, padding, out = [], [], [], []
    for n in shape[1:]:
        k = draw(st.integers(1, min(2, n)))
        s = draw(st.integers(1, 2))
        p = draw(st.integers(0, k // 2))
        kernel.append(k), stride.append(s), padding.append(p)
        out.append(_out_len(n, k, s, p, 1))
    cls = draw(st.sampled_from([SumPool2d, AvgPool2d]))
    node = cls(
        kernel_size=_int_array(draw, kernel),
        stride=_int_array(draw, stride),
        padding=_int_array(draw, padding),
        metadata=draw(_maybe_metadata()),
    )
    return node, (shape[0], *out)


@st.composite
def conv_graphs(draw, nir_writable: bool = False, spiking: bool = False):
    """Input (C, *spatial) -> Conv1d/Conv2d -> neuron -> [pool -> neuron] -> Flatten -> dense ->
    elementwise -> Output, every shape consistent (padding ints or 'same'/'valid', stride,
    dilation, groups); the first neuron spikes when `spiking`."""
    dims = draw(st.sampled_from([1, 2]))
    c_in = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(3, 7)) for _ in range(dims))
    names = iter(draw(_names(10)))
    inp = next(names)
    nodes = {inp: Input(shape=np.array([c_in, *spatial]))}
    edges = []
    conv, shape = draw(_conv(dims, c_in, spatial, nir_writable))
    conv_name, neuron = next(names), next(names)
    nodes[conv_name], nodes[neuron] = conv, draw(neuron_nodes(shape, spiking=spiking))
    edges += [(inp, conv_name), (conv_name, neuron)]
    prev = neuron
    if dims == 2 and draw(st.booleans()):
        pool, shape = draw(_pool(shape))
        pool_name, after = next(names), next(names)
        nodes[pool_name], nodes[after] = pool, draw(elementwise_nodes(shape))
        edges += [(prev, pool_name), (pool_name, after)]
        prev = after
    n = len(shape)
    flat = Flatten(
        start_dim=draw(st.sampled_from([0, -n])),
        end_dim=draw(st.sampled_from([-1, n - 1])),
        input_type=np.array(shape) if nir_writable or draw(st.booleans()) else None,
        metadata=draw(_maybe_metadata()),
    )
    flat_name, dense, last, out = next(names), next(names), next(names), next(names)
    n_out = draw(st.integers(1, 4))
    nodes[flat_name] = flat
    nodes[dense] = draw(dense_nodes(int(np.prod(shape)), n_out))
    nodes[last] = draw(elementwise_nodes((n_out,)))
    nodes[out] = Output(shape=np.array([n_out]))
    edges += [(prev, flat_name), (flat_name, dense), (dense, last), (last, out)]
    return Graph(nodes=nodes, edges=edges, metadata=draw(_maybe_metadata()))


@st.composite
def recurrent_graphs(draw, spiking: bool = False):
    """Input -> dense -> neuron <-> recurrent dense (a cycle), maybe a self-loop on the neuron,
    -> dense -> elementwise -> Output; edges in random order; the neuron spikes when `spiking`."""
    n, m, o = (draw(st.integers(1, 5)) for _ in range(3))
    inp, w_in, lif, w_rec, w_out, last, out = draw(_names(7))
    nodes = {
        inp: Input(shape=np.array([n])),
        w_in: draw(dense_nodes(n, m)),
        lif: draw(neuron_nodes((m,), spiking=spiking)),
        w_rec: draw(dense_nodes(m, m)),
        w_out: draw(dense_nodes(m, o)),
        last: draw(elementwise_nodes((o,))),
        out: Output(shape=np.array([o])),
    }
    edges = [(inp, w_in), (w_in, lif), (lif, w_rec), (w_rec, lif), (lif, w_out), (w_out, last), (last, out)]
    if draw(st.booleans()):
        edges.append((lif, lif))
    return Graph(nodes=nodes, edges=draw(st.permutations(edges)), metadata=draw(_maybe_metadata()))


@st.composite
def _block(draw, m: int, depth: int, spiking: bool = False) -> Graph:
    """A nested graph of width m: Input -> neuron <-> recurrent dense -> Output, or (depth > 0)
    Input -> inner block -> elementwise -> Output."""
    inp, core, rec, out = draw(_names(4))
    if depth == 0:
        nodes = {inp: Input(shape=np.array([m])), core: draw(neuron_nodes((m,), spiking=spiking)), rec: draw(dense_nodes(m, m))}
        edges = [(inp, core), (core, rec), (rec, core), (core, out)]
    else:
        nodes = {inp: Input(shape=np.array([m])), core: draw(_block(m, depth - 1, spiking)), rec: draw(elementwise_nodes((m,)))}
        edges = [(inp, core), (core, rec), (rec, out)]
    nodes[out] = Output(shape=np.array([m]))
    return Graph(nodes=nodes, edges=edges, metadata=draw(_maybe_metadata()))


@st.composite
def nested_graphs(draw, max_depth: int = 2, spiking: bool = False):
    """Input -> dense -> nested block (1..max_depth levels) -> dense -> Output. Sometimes the
    outgoing edge names a node inside the block with a dotted path (`block.neuron`). The
    innermost neuron spikes when `spiking`."""
    n, m, o = (draw(st.integers(1, 4)) for _ in range(3))
    inp, w_in, block, w_out, out = draw(_names(5))
    sub = draw(_block(m, draw(st.integers(0, max_depth - 1)), spiking))
    nodes = {
        inp: Input(shape=np.array([n])),
        w_in: draw(dense_nodes(n, m)),
        block: sub,
        w_out: draw(dense_nodes(m, o)),
        out: Output(shape=np.array([o])),
    }
    source = block
    if draw(st.booleans()):  # leave from the block's first non-Input/Output node
        inner = next(k for k, v in sub.nodes.items() if not isinstance(v, (Input, Output)))
        source = f"{block}.{inner}"
    edges = [(inp, w_in), (w_in, block), (source, w_out), (w_out, out)]
    return Graph(nodes=nodes, edges=edges, metadata=draw(_maybe_metadata()))


def graphs(nir_writable: bool = False, spiking: bool = False) -> st.SearchStrategy[Graph]:
    """Any valid graph: feedforward, convolutional, recurrent or nested; with a spiking neuron
    in each family's first neuron position when `spiking`."""
    return st.one_of(
        feedforward_graphs(spiking=spiking),
        conv_graphs(nir_writable=nir_writable, spiking=spiking),
        recurrent_graphs(spiking=spiking),
        nested_graphs(spiking=spiking),
    )
