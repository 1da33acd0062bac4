"""The computation-graph walker and drawer: right nodes and names, shared nodes once, readable layout."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from autograder.graph import GraphFigure, NoGraph, draw_graph, graph_summary, layout_graph, walk_graph  # noqa: E402


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


@pytest.fixture
def lesson_graph():
    """The lesson's example: y = x + 2, z = y * y * 2, z = z.mean()."""
    x = torch.rand(3, requires_grad=True)
    y = x + 2
    z = y * y * 2
    z = z.mean()
    return x, y, z


def all_grad_fns(tensor: torch.Tensor) -> set[int]:
    """Independent reference: every distinct node reachable from tensor.grad_fn."""
    seen: dict[int, object] = {}
    stack = [tensor.grad_fn]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen[id(fn)] = fn
        stack.extend(child for child, _ in fn.next_functions if child is not None)
    return set(seen)


def test_lesson_graph_has_the_expected_nodes_and_names(lesson_graph):
    x, y, z = lesson_graph
    graph = walk_graph(z, {"x": x, "y": y, "z": z})
    assert graph.node_names() == ["MeanBackward0", "MulBackward0", "MulBackward0", "AddBackward0", "AccumulateGrad"]
    assert graph.leaf_names() == ["x"]
    assert graph.root.name == "z" and graph.root.kind == "root" and graph.root.shape == torch.Size([])
    add = next(n for n in graph.nodes if n.op == "AddBackward0")
    assert add.name == "y" and add.shape == torch.Size([3])
    leaf = graph.nodes[-1]
    assert leaf.kind == "leaf" and leaf.fn.variable is x and leaf.shape == torch.Size([3])
    # y * y: two edges to the single node of y; the constant 2 gives no edge.
    edges = [(p.op, c.op) for p, c in graph.edges]
    assert edges.count(("MulBackward0", "AddBackward0")) == 2
    assert len(graph.edges) == 5


def test_every_edge_goes_one_layer_deeper_at_least(lesson_graph):
    x, y, z = lesson_graph
    graph = walk_graph(z)
    assert [n.depth for n in graph.nodes] == [0, 1, 2, 3, 4]
    for parent, child in graph.edges:
        assert child.depth > parent.depth


def test_shared_subexpression_is_one_node():
    x = torch.randn(4, requires_grad=True)
    a = x * 2
    b = torch.sin(a) + a
    out = (a * b).sum()
    graph = walk_graph(out, {"a": a, "x": x})
    assert len(graph.nodes) == len(all_grad_fns(out))
    named_a = [n for n in graph.nodes if n.name == "a"]
    assert len(named_a) == 1 and named_a[0].fn is a.grad_fn
    assert sum(1 for _, c in graph.edges if c is named_a[0]) == 3  # used by sin, + and *


def test_recomputed_subexpression_is_two_nodes():
    x = torch.tensor(1.0, requires_grad=True)
    graph = walk_graph((x + 2) * (x + 2) * 2)
    assert graph.node_names().count("AddBackward0") == 2
    assert graph.node_names().count("AccumulateGrad") == 1


def test_leaves_are_named_by_identity_not_by_value():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    twin = torch.ones(2, requires_grad=True)
    out = (a * 3 + b).sum()
    graph = walk_graph(out, {"twin": twin, "b": b, "a": a, "not_a_tensor": 3, "_hidden": a})
    assert sorted(graph.leaf_names()) == ["a", "b"]
    unnamed = walk_graph(out)
    assert unnamed.leaf_names() == [None, None] and unnamed.root.name == "sortie"


def test_globals_like_namespace_is_accepted(lesson_graph):
    x, y, z = lesson_graph
    namespace = {"__name__": "__main__", "torch": torch, "x": x, "y": y, "z": z, "n": 3}
    assert walk_graph(z, namespace).leaf_names() == ["x"]


def test_summary_is_an_indented_tree(lesson_graph):
    x, y, z = lesson_graph
    text = plain(graph_summary(z, {"x": x, "y": y, "z": z}))
    assert text.splitlines() == [
        "Graphe de calcul de z (de la sortie vers les feuilles) :",
        "z : MeanBackward0, forme ()  ← sortie",
        "└─ MulBackward0",
        "   └─ MulBackward0",
        "      ├─ y : AddBackward0, forme (3,)",
        "      │  └─ x : feuille (AccumulateGrad), forme (3,)",
        "      └─ y : AddBackward0, forme (3,) (déjà décrit plus haut : nœud partagé)",
    ]


@pytest.mark.parametrize("requires_grad", [False, True])
def test_tensor_without_grad_fn_gets_a_french_explanation(requires_grad):
    t = torch.rand(3, requires_grad=requires_grad)
    with pytest.raises(NoGraph) as reason:
        walk_graph(t, {"t": t})
    message = plain(str(reason.value))
    assert "grad_fn" in message
    assert ("feuille" in message) == requires_grad
    assert plain(graph_summary(t, {"t": t})) == message
    fig = draw_graph(t, {"t": t})
    assert isinstance(fig, Figure)
    shown = " ".join(text.get_text() for text in fig.axes[0].texts)
    assert "grad_fn" in shown and "\n" in shown  # wrapped, readable


def test_no_grad_results_have_no_graph():
    x = torch.rand(3, requires_grad=True)
    with torch.no_grad():
        y = x * 2
    assert "requires_grad=False" in graph_summary(y)


def test_figure_draws_one_box_per_node_and_one_arrow_per_edge(lesson_graph):
    x, y, z = lesson_graph
    before = plt.get_fignums()
    fig = draw_graph(z, {"x": x, "y": y, "z": z}, title="Graphe de z")
    assert plt.get_fignums() == before  # never registered with pyplot: no double display
    assert isinstance(fig, GraphFigure)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(boxes) == 5 and len(arrows) == 5
    texts = [t.get_text() for t in ax.texts]
    for label in ("z", "MeanBackward0", "y", "AddBackward0", "x", "AccumulateGrad", "forme (3,)", "Graphe de z"):
        assert label in texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("rétropropagation" in t for t in legend) and any("feuille" in t for t in legend)
    assert repr(fig) == graph_summary(z, {"x": x, "y": y, "z": z})  # text alternative
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_draw_into_existing_axes(lesson_graph):
    x, y, z = lesson_graph
    fig, ax = plt.subplots()
    try:
        assert draw_graph(z, {"x": x}, ax=ax) is fig
        assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 5
    finally:
        plt.close(fig)


def _fifteen_node_graph():
    w = torch.randn(3, requires_grad=True)
    b = torch.randn(1, requires_grad=True)
    inputs = torch.randn(5, 3)
    pred = torch.sigmoid(inputs @ w + b)
    loss = ((pred - 1) ** 2).mean() + 0.1 * (w**2).sum() + torch.exp(-b).sum() * torch.sin(w).mean()
    return loss, {"w": w, "b": b, "pred": pred, "loss": loss}


def _box(centre, size, margin=0.0):
    (cx, cy), (w, h) = centre, size
    return cx - w / 2 - margin, cy - h / 2 - margin, cx + w / 2 + margin, cy + h / 2 + margin


def _overlap(a, b):
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_fifteen_nodes_stay_readable(direction):
    loss, names = _fifteen_node_graph()
    graph = walk_graph(loss, names)
    assert 15 <= len(graph.nodes) <= 25
    layout = layout_graph(graph, direction)
    assert layout.direction == direction
    boxes = {id(n): _box(layout.centres[id(n)], n.box_size) for n in graph.nodes}
    values = list(boxes.values())
    for i, a in enumerate(values):  # no two boxes overlap
        for b in values[i + 1 :]:
            assert not _overlap(a, b)
    # Every edge, straight or through its bend points, avoids the boxes other than its two ends.
    for parent, child, bends, _, count in layout.routes:
        if count > 1:
            continue  # an input used twice: two arcs between adjacent layers
        points = [layout.centres[id(parent)], *bends, layout.centres[id(child)]]
        others = [box for key, box in boxes.items() if key not in (id(parent), id(child))]
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
            for k in range(1, 20):
                px, py = x0 + (x1 - x0) * k / 20, y0 + (y1 - y0) * k / 20
                assert not any(a < px < c and b < py < d for a, b, c, d in others), (parent.op, child.op)
    fig = draw_graph(loss, names, direction=direction)
    assert sum(isinstance(p, FancyBboxPatch) for p in fig.axes[0].patches) == len(graph.nodes)


def test_automatic_direction_turns_long_graphs_vertical(lesson_graph):
    x, y, z = lesson_graph
    width, height = draw_graph(z).get_size_inches()
    assert width > height  # short chain: horizontal
    loss, names = _fifteen_node_graph()
    width, height = draw_graph(loss, names).get_size_inches()
    assert height > width  # nine layers: vertical


def test_long_chains_do_not_hit_the_recursion_limit():
    x = torch.rand(2, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0001
    graph = walk_graph(y.sum())
    assert len(graph.nodes) == 3002
    assert len(graph_summary(y.sum()).splitlines()) < 300
    fig = draw_graph(y.sum())
    assert "trop grand" in plain(repr(fig))


def test_bad_arguments_are_refused():
    x = torch.rand(2, requires_grad=True)
    with pytest.raises(TypeError):
        walk_graph([1, 2])
    with pytest.raises(ValueError):
        draw_graph(x * 2, direction="diagonal")
