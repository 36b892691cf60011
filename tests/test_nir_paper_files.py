"""The NIR paper's own graph files (../shared/fixtures/nir-paper; skipped when absent).

Five of the eight load, and equal what `nir.read` makes of them. The three that `nir.read`
rejects are rejected by `load` too, each with a message that says what is inconsistent in
the file: both readings of such a file would be guesses, and loading never invents or
renames nodes or reshapes outputs.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from nirbridge import GraphValidationError
from nirbridge.io import load, save
from nirbridge.ir import IF, Affine, Conv2d, CubaLIF, Flatten, Graph, Linear, SumPool2d

LOADABLE = [
    "01_lif/lif_norse.nir",
    "01_lif/two_lif_neurons.nir",
    "02_cnn/cnn_sinabs.nir",
    "03_rnn/braille_noDelay_bias_zero.nir",
    "03_rnn/braille_noDelay_noBias_subtract.nir",
]


@pytest.mark.parametrize("name", LOADABLE)
def test_loads_as_nir_reads_it(fixtures_dir, name):
    path = fixtures_dir / name
    assert load(path) == Graph.from_nir(nir.read(path))


@pytest.mark.parametrize("name", LOADABLE)
def test_save_round_trip_of_paper_graphs(fixtures_dir, tmp_path, name):
    g = load(fixtures_dir / name)
    out = tmp_path / "copy.nir"
    save(g, out)
    assert load(out) == g
    assert Graph.from_nir(nir.read(out)) == g


def test_lif_norse_matches_the_readme(fixtures_dir):
    """input -> Affine (1x1, weight 1, bias 0) -> LIF (tau 2.5e-3, r 1, v_leak 0,
    v_threshold 0.1, v_reset 0) -> output. The file (NIR 0.1.1) has no v_reset: NIR's default 0."""
    g = load(fixtures_dir / "01_lif/lif_norse.nir")
    affine, lif = g.nodes["0"], g.nodes["1"]
    assert isinstance(affine, Affine) and affine.weight.tolist() == [[1.0]] and affine.bias.tolist() == [0.0]
    assert lif.tau.tolist() == [np.float32(2.5e-3)] and lif.r.tolist() == [1.0] and lif.v_leak.tolist() == [0.0]
    assert lif.v_threshold.tolist() == [np.float32(0.1)] and lif.v_reset.tolist() == [0.0]
    assert lif.v_reset.dtype == lif.v_threshold.dtype == np.float32
    assert g.edges == [("input", "0"), ("0", "1"), ("1", "output")]


def test_cnn_sinabs_shapes(fixtures_dir):
    """Input 2x34x34; Conv2d(2->16, 5x5) -> IF ... -> Flatten -> Affine -> IF -> Affine(->10) -> IF.
    Conv 5x5, stride 2, padding 1 on 34x34: (34 + 2 - 5) // 2 + 1 = 16; two 2x2 SumPools take
    the 16x16 maps to 8x8 and then 4x4; Flatten of 8x4x4 gives 128 features."""
    g = load(fixtures_dir / "02_cnn/cnn_sinabs.nir")
    shapes = g.shapes()
    assert isinstance(g.nodes["0"], Conv2d) and shapes["0"] == ((2, 34, 34), (16, 16, 16))
    assert isinstance(g.nodes["4"], SumPool2d) and shapes["4"] == ((16, 16, 16), (16, 8, 8))
    assert isinstance(g.nodes["7"], SumPool2d) and shapes["7"] == ((8, 8, 8), (8, 4, 4))
    assert isinstance(g.nodes["8"], Flatten) and shapes["8"] == ((8, 4, 4), (128,))
    assert isinstance(g.nodes["12"], IF) and shapes["12"] == ((10,), (10,))
    ifs = [n for n in g.nodes.values() if isinstance(n, IF)]
    assert len(ifs) == 5 and all((n.r == 1).all() and (n.v_threshold == 1).all() and (n.v_reset == 0).all() for n in ifs)


@pytest.mark.parametrize("variant, hidden, layer", [("bias_zero", 38, Affine), ("noBias_subtract", 40, Linear)])
def test_braille_parameters_follow_snntorch_export(fixtures_dir, variant, hidden, layer):
    """Dotted top-level names (`lif1.lif`, `lif1.w_rec`) are plain names; the recurrent edge pair
    makes a cycle. With dt = 1e-4 (snnTorch): tau_mem = dt / (1 - beta), tau_syn = dt / (1 - alpha),
    r = tau_mem / dt and w_in = tau_syn / dt, with alpha and beta from the training parameters."""
    g = load(fixtures_dir / f"03_rnn/braille_noDelay_{variant}.nir")
    name = "parameters_noDelay_bias_ref_zero.json" if variant == "bias_zero" else "parameters_noDelay_noBias_ref_subtract.json"
    params = json.loads((fixtures_dir / "03_rnn" / name).read_text())
    assert params["nb_hidden"] == hidden
    lif, rec = g.nodes["lif1.lif"], g.nodes["lif1.w_rec"]
    assert isinstance(lif, CubaLIF) and isinstance(rec, layer) and rec.weight.shape == (hidden, hidden)
    assert {("lif1.lif", "lif1.w_rec"), ("lif1.w_rec", "lif1.lif")} <= set(g.edges)
    dt = 1e-4
    np.testing.assert_allclose(lif.tau_mem, dt / (1 - params["beta_r"]), rtol=1e-5)
    np.testing.assert_allclose(lif.tau_syn, dt / (1 - params["alpha_r"]), rtol=1e-5)
    np.testing.assert_allclose(lif.r, lif.tau_mem / dt, rtol=1e-5)
    np.testing.assert_allclose(lif.w_in, lif.tau_syn / dt, rtol=1e-5)
    assert (lif.v_reset == 0).all()  # "subtract" lives only in the file name


def test_lif_rockpool_is_rejected_for_its_output_shape(fixtures_dir):
    """Rejected. The Output node declares shape (1, 1, 1) while the LIF feeding it emits (1,).
    The element counts agree, so a reader could reshape; but which of the two shapes the
    producer meant is not in the file, and choosing one silently changes the graph's interface.
    nir.read rejects it for the same reason. The error names the edge, both nodes and shapes."""
    path = fixtures_dir / "01_lif/lif_rockpool.nir"
    with pytest.raises(GraphValidationError) as info:
        load(path)
    assert str(info.value) == f"{path}: edges[1]: 1_LIFNeuronTorch outputs shape (1,) but output takes (1, 1, 1)"
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(path)


@pytest.mark.parametrize("variant", ["bias_zero", "noBias_subtract"])
def test_braille_subgraph_files_are_rejected_for_dangling_inner_edges(fixtures_dir, variant):
    """Rejected. Inside the nested graph `lif1`, all four edges name a node `lif`, but the
    neuron there is called `lif1`, which is therefore wired to nothing. Renaming `lif` to `lif1`
    would be a guess at the producer's intent. The same networks load from the flat files (test_loads_as_nir_reads_it).
    The error lists every dangling edge with the nodes that do exist, and the orphaned neuron."""
    path = fixtures_dir / f"03_rnn/braille_noDelay_{variant}_subgraph.nir"
    with pytest.raises(GraphValidationError) as info:
        load(path)
    found = [str(p) for p in info.value.problems]
    known = "(nodes: input, lif1, lin, output)"
    assert found == [
        f"nodes.lif1.edges[0]: destination 'lif' does not exist {known}",
        f"nodes.lif1.edges[1]: source 'lif' does not exist {known}",
        f"nodes.lif1.edges[2]: destination 'lif' does not exist {known}",
        f"nodes.lif1.edges[3]: source 'lif' does not exist {known}",
        "nodes.lif1.nodes.lif1: node is connected to nothing (orphan)",
    ]
    assert str(info.value).startswith(f"{path}: 5 problems: ")
    with pytest.raises(ValueError, match="'lif' which does not exist"):
        nir.read(path)
