"""dlg.viz, `model.viz()` and `dlgc viz`: the DOT source is read back (nodes, edges, clusters)
and checked against the model itself: parameter counts against the parameter arrays, edge
labels against the graph's value types, kernel clusters against fusion's choice. Rendering
runs only where Graphviz's `dot` program is installed."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import dlg
from dlg.cli import main
from dlg.errors import DlgImportError, DlgTypeError, DlgValueError
from dlg.viz import picture, save

pytest.importorskip("graphviz")

MODELS = Path(__file__).resolve().parent.parent / "models"
LABEL = r'label=("(?:[^"\\]|\\.)*"|[^\s\]]+)'


def read_dot(source: str) -> tuple[dict[str, tuple[str, str | None]], list[tuple[str, str, str]]]:
    """Nodes (id -> (label, label of the cluster it is drawn in)) and edges (src, dst, label)."""
    nodes: dict[str, tuple[str, str | None]] = {}
    edges: list[tuple[str, str, str]] = []
    cluster: str | None = None
    for line in source.splitlines():
        line = line.strip()
        label = re.search(LABEL, line)
        text = label.group(1).strip('"').replace("\\n", "\n") if label else ""
        if line.startswith("subgraph cluster_"):
            cluster = ""
        elif line == "}":
            cluster = None
        elif cluster == "" and not re.match(r"\w+ \[", line):
            cluster = text
        elif m := re.match(r"(\w+) -> (\w+) \[", line):
            edges.append((m.group(1), m.group(2), text))
        elif (m := re.match(r"(\w+) \[", line)) and m.group(1) not in ("node", "edge"):
            nodes[m.group(1)] = (text, cluster)
    return nodes, edges


def by_label(nodes: dict[str, tuple[str, str | None]], text: str) -> str:
    found = [k for k, (label, _) in nodes.items() if label.split("\n")[0] == text]
    assert len(found) == 1, (text, found)
    return found[0]


def layer_size(m: dlg.Model, name: str) -> int:
    return sum(v.size for k, v in m.params.items() if k.startswith(name + "."))


@pytest.fixture(scope="module")
def cnn() -> dlg.Model:
    return dlg.load(MODELS / "cnn.dlg")


def test_layers_are_boxes_with_their_parameter_counts(cnn):
    nodes, edges = read_dot(picture(cnn).source)
    for name, kind in [("conv1", "Conv2d"), ("pool", "MaxPool2d"), ("fc1", "Linear"),
                       ("fc2", "Linear")]:
        box = by_label(nodes, f"{name}: {kind}")
        assert nodes[box][0].split("\n")[1] == f"({layer_size(cnn, name):,} params)"
    assert not any(label.startswith(("conv2d", "linear", "max_pool", "fc1.weight"))
                   for label, _ in nodes.values())  # inside their boxes
    into = {(nodes[s][0].split("\n")[0], nodes[d][0].split("\n")[0]): t for s, d, t in edges}
    assert into[("input x", "conv1: Conv2d")] == "f32[N,3,10,10]"
    assert into[("conv1: Conv2d", "relu")] == "f32[N,64,10,10]"
    assert into[("flatten", "fc1: Linear")] == "f32[N,1600]"
    assert into[("fc2: Linear", "output logits")] == "f32[N,10]"
    title = re.search(r'label="CNN: ([\d,]+) parameters"', picture(cnn).source)
    assert title and title.group(1) == f"{sum(v.size for v in cnn.params.values()):,}"


def test_expanded_layers_are_clusters_of_their_ops_and_params(cnn):
    nodes, edges = read_dot(cnn.viz(expand=True).source)
    clusters = {c for _, c in nodes.values() if c}
    assert clusters == {f"conv1: Conv2d ({layer_size(cnn, 'conv1'):,} params)",
                        "pool: MaxPool2d (0 params)",
                        f"fc1: Linear ({layer_size(cnn, 'fc1'):,} params)",
                        f"fc2: Linear ({layer_size(cnn, 'fc2'):,} params)"}
    assert nodes[by_label(nodes, "fc1.weight")][1].startswith("fc1: Linear")
    assert nodes[by_label(nodes, "h = max_pool")][1].startswith("pool:")
    assert nodes[by_label(nodes, "flatten")][1] is None
    ops = sorted(label.split("\n")[0].split(" = ")[-1] for label, _ in nodes.values()
                 if not label.startswith(("input ", "output ")) and "." not in label)
    assert ops == sorted(n.op.name for n in cnn.graph if n.op.name not in ("input", "param"))
    g = cnn.graph
    for src, dst, label in edges:  # each edge carries a value its reader reads, and its type
        read = ([g.outputs[int(dst.split("_")[1])][1]] if dst.startswith("output_") else
                g.nodes[int(dst[1:])].inputs)
        read = [v for v in read if v.node == int(src[1:])]
        assert read and label == str(g.type_of(read[0])), (src, dst, label)
    assert len(edges) == len({(v, n.id) for n in g for v in n.inputs}) + len(g.outputs)


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.glob("*.dlg")))
def test_every_model_draws_each_node_once_and_layers_in_order(name):
    """Layer calls run one after another, so boxes drawn for them never form a cycle (cifar_cnn
    calls `pool` twice: two boxes)."""
    m = dlg.load(MODELS / name)
    nodes, edges = read_dot(m.viz(expand=True).source)
    drawn = sorted(int(k[1:]) for k in nodes if re.fullmatch(r"n\d+", k))
    assert drawn == sorted(n.id for n in m.graph)
    nodes, edges = read_dot(m.viz().source)
    boxes = {k: label for k, (label, _) in nodes.items() if k.startswith("group_")}
    counts = [int(label.rsplit("(", 1)[1].split()[0].replace(",", "")) for label in boxes.values()
              if "(call " not in label]  # a layer's later calls show no parameters again
    loose = [n for n in m.graph.params if f"n{n.id}" in nodes]
    assert sum(counts) + sum(int(m.params[n.name].size) for n in loose) == m.num_params(False)
    order = nx.DiGraph([(s, d) for s, d, _ in edges])
    assert nx.is_directed_acyclic_graph(order)
    assert len(set(boxes.values())) == len(boxes)  # a second call is a box of its own


def test_a_recurrent_layer_keeps_its_whole_call_site():
    m = dlg.load(MODELS / "lstm.dlg")
    nodes, edges = read_dot(m.viz(expand=True).source)
    inside = sorted(label.split("\n")[0] for label, c in nodes.values() if c and
                    c.startswith("lstm: LSTM") and "." not in label)
    assert inside == ["full", "full", "scan", "stack", "stack", "x = transpose", "x = transpose"]
    nodes, edges = read_dot(m.viz().source)
    lstm = by_label(nodes, "lstm: LSTM")
    assert nodes[lstm][0].endswith(f"({layer_size(m, 'lstm'):,} params)")
    assert [t for s, d, t in edges if d == lstm] == ["f32[N,28,28]"]
    assert [t for s, d, t in edges if s == lstm] == ["f32[N,28,128]"]


def test_a_user_defined_layer_and_a_traced_module(tmp_path):
    path = tmp_path / "res.dlg"
    path.write_text("""
layer Residual(n: int) {
    param weight: f32[n, n] = uniform(-0.1, 0.1)
    layer norm = LayerNorm(n)
    forward(x) { return x + norm(x @ T(weight)) }
}
model Net {
    input x: f32[B, 8]
    layer res = Residual(8)
    output y = relu(res(x))
}
""")
    m = dlg.load(path)
    nodes, _ = read_dot(m.viz(expand=True).source)
    inside = sorted(label.split("\n")[0] for label, c in nodes.values()
                    if c == f"res: Residual ({layer_size(m, 'res')} params)")  # 64 + 16
    assert inside == ["layer_norm", "matmul", "res.norm.bias", "res.norm.weight", "res.weight",
                      "transpose"]
    net = dlg.nn.Sequential(dlg.nn.Linear(6, 4), dlg.nn.ReLU(), dlg.nn.Linear(4, 2))
    traced = dlg.trace(net, np.zeros((3, 6), np.float32))
    nodes, _ = read_dot(traced.viz().source)
    assert by_label(nodes, "0: Linear") and by_label(nodes, "2: Linear")
    assert nodes[by_label(nodes, "0: Linear")][0].endswith(f"({6 * 4 + 4} params)")


def test_compiled_outlines_the_fused_kernels():
    m = dlg.load(MODELS / "mlp.dlg")
    nodes, edges = read_dot(m.viz(compiled=True).source)
    kernels: dict[str, list[str]] = {}
    for label, cluster in nodes.values():
        if cluster:
            kernels.setdefault(cluster, []).append(label.split("\n")[0].split(" = ")[-1])
    for name, ops in kernels.items():  # lowering names a kernel after the ops it computes
        assert re.fullmatch(r"k\d+_\w+", name) and all(op in name for op in ops), name
    epilogue = [ops for ops in kernels.values() if "relu" in ops]
    assert len(epilogue) == 1 and {"matmul", "add"} <= set(epilogue[0])  # bias, relu fused
    assert "style=dashed" in m.viz(compiled=True).source  # values never stored
    train = read_dot(m.viz(train=True).source)[0]
    assert by_label(train, "output loss") and by_label(train, "output accuracy")


def test_dot_source_needs_no_program_and_images_name_what_is_missing(cnn, tmp_path,
                                                                    monkeypatch):
    save(picture(cnn), tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == picture(cnn).source
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    with pytest.raises(DlgImportError, match=r"`dot` program.*pip install 'dlg\[viz\]'.*"
                       r"apt install graphviz"):
        save(picture(cnn), tmp_path / "g.svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot"]
    with pytest.raises(DlgValueError, match="cannot tell the picture format.*'txt'"):
        save(picture(cnn), tmp_path / "g.txt")


def test_what_can_be_drawn(cnn):
    nodes, _ = read_dot(picture(cnn.graph).source)  # no layer calls: layers by parameter name
    assert sorted(label for k, (label, _) in nodes.items() if k.startswith("group_")) == [
        f"{name}\n({layer_size(cnn, name):,} params)" for name in ("conv1", "fc1", "fc2")]
    with pytest.raises(DlgTypeError, match="draws a dlg.Model, a dlg.Executable or an IR Graph, "
                       "not ndarray"):
        picture(np.zeros(3))
    with pytest.raises(DlgValueError, match="model Net has no train section"):
        dlg.loads("model Net { input x: f32[N, 2]  output y = relu(x) }").viz(train=True)


def test_without_the_graphviz_package(cnn, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    with pytest.raises(DlgImportError, match=r"graphviz Python package.*pip install "
                       r"'dlg\[viz\]'.*apt install graphviz"):
        cnn.viz()


def test_dlgc_viz(capsys, tmp_path, cnn):
    assert main(["viz", str(MODELS / "cnn.dlg"), "-o", str(tmp_path / "g.gv")]) == 0
    assert (tmp_path / "g.gv").read_text() == picture(cnn).source
    assert capsys.readouterr().out == f"wrote {tmp_path / 'g.gv'}\n"
    assert main(["viz", str(MODELS / "cnn.dlg"), "--expand"]) == 0
    assert capsys.readouterr().out == picture(cnn, expand=True).source
    assert main(["viz", str(MODELS / "cnn.dlg"), "--expand", "--compiled"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --expand opens layers") and "Traceback" not in err


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program not installed")
def test_rendered_svg(cnn, tmp_path):
    save(cnn.viz(), tmp_path / "g.svg")
    svg = (tmp_path / "g.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "fc1: Linear" in svg and "f32[N,1600]" in svg
