"""Draw the backward graph of a tensor with matplotlib alone (no Graphviz binary needed).

``walk_graph`` follows ``tensor.grad_fn`` and ``next_functions`` (each node once, even when it is
shared), ``graph_summary`` describes the graph as an indented text tree, and ``draw_graph`` draws a
layered diagram: leaves on one side, the output on the other, arrows in the direction of
backpropagation (from the output towards the leaves).

Figures are built with ``matplotlib.figure.Figure`` directly, never through ``pyplot``: nothing is
left in pyplot's state, so a notebook shows the figure once, when it is the value of a cell (or via
``display(fig)``). The text tree is the figure's ``text/plain`` representation, i.e. its text
alternative in a notebook.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.path import Path

from autograder.tensor_checks import fmt_shape
from autograder.typography import french_spacing

__all__ = [
    "ComputationGraph",
    "GraphFigure",
    "GraphLayout",
    "GraphNode",
    "NoGraph",
    "draw_graph",
    "graph_summary",
    "layout_graph",
    "walk_graph",
]

ROOT, OP, LEAF = "root", "op", "leaf"

# Colours (fill, edge) of the three kinds of nodes, and of the arrows.
STYLES = {
    ROOT: ("#fde0c5", "#c55a11"),
    OP: ("#dbe9f6", "#2f5f8a"),
    LEAF: ("#d9f0d3", "#2e7d32"),
}
ARROW_COLOUR = "#555555"
HIGHLIGHT_COLOUR = "#c62828"  # the node being replayed and the gradients it sends
LEGEND = {
    ROOT: "sortie (racine du graphe)",
    OP: "opération (nœud grad_fn)",
    LEAF: "feuille (AccumulateGrad)",
}

# Geometry, in inches (the axes' data coordinates are inches).
FONT_SIZE = 9.5
CHAR_WIDTH = 0.6 * FONT_SIZE / 72  # monospace glyphs are 0.6 em wide
LINE_HEIGHT = 1.3 * FONT_SIZE / 72
PAD = 0.1
LAYER_GAP = 0.75
CROSS_GAP = 0.3
MARGIN = 0.25
MAX_HORIZONTAL_WIDTH = 11.0
MAX_NODES = 60
MIN_FIGURE_WIDTH = 6.5
MAX_SUMMARY_LINES = 200


@dataclass
class GraphNode:
    """One node of the backward graph: the ``grad_fn`` of an operation, or the ``AccumulateGrad`` of a leaf."""

    fn: Any
    kind: str
    op: str
    name: str | None = None
    shape: torch.Size | None = None
    depth: int = 0
    children: list[GraphNode] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # extra (text, colour) lines drawn in the box

    @property
    def label_lines(self) -> list[str]:
        lines = [self.name] if self.name else []
        lines.append(self.op)
        if self.shape is not None:
            lines.append(f"forme {fmt_shape(self.shape)}")
        lines.extend(text for text, _ in self.notes)
        return lines

    @property
    def box_size(self) -> tuple[float, float]:
        """Width and height of the node's box in the drawing, in inches (monospace labels)."""
        lines = self.label_lines
        return max(len(line) for line in lines) * CHAR_WIDTH + 2 * PAD, len(lines) * LINE_HEIGHT + 2 * PAD

    def describe(self) -> str:
        parts = [self.op if self.kind != LEAF else "feuille (AccumulateGrad)"]
        if self.shape is not None:
            parts.append(f"forme {fmt_shape(self.shape)}")
        head = f"{self.name} : " if self.name else ""
        return french_spacing(head + ", ".join(parts))


@dataclass
class ComputationGraph:
    """Nodes in discovery order (root first) and edges ``(parent, child)`` in backpropagation direction.

    An operation that uses the same input twice (``y * y``) has two edges to it.
    """

    root: GraphNode
    nodes: list[GraphNode]
    edges: list[tuple[GraphNode, GraphNode]]

    def node_names(self) -> list[str]:
        return [n.op for n in self.nodes]

    def leaf_names(self) -> list[str | None]:
        return [n.name for n in self.nodes if n.kind == LEAF]


class NoGraph(ValueError):
    """The tensor has no ``grad_fn``: there is no graph to draw. The message is in French."""


def _named_tensors(names: Mapping[str, Any] | None) -> list[tuple[str, torch.Tensor]]:
    """Keep the tensors of ``names`` (so ``globals()`` works too), skipping private names."""
    if not names:
        return []
    return [(k, v) for k, v in names.items() if isinstance(v, torch.Tensor) and not k.startswith("_")]


def _no_graph_message(tensor: torch.Tensor, name: str | None) -> str:
    who = f"Le tenseur « {name} »" if name else "Ce tenseur"
    if tensor.requires_grad:
        return french_spacing(
            f"{who} est une feuille du graphe de calcul : vous l'avez créé avec `requires_grad=True`, il n'a donc "
            "pas de `grad_fn`. Un graphe apparaît dès qu'on calcule avec lui, par exemple `y = x + 2`."
        )
    return french_spacing(
        f"{who} n'a pas de `grad_fn` : il ne suit pas les gradients (`requires_grad=False`). "
        "Aucune de ses entrées n'avait `requires_grad=True`, ou le calcul a été fait sous `torch.no_grad()` "
        "ou après un `detach()`. Il n'y a donc pas de graphe de calcul à dessiner."
    )


def walk_graph(tensor: torch.Tensor, names: Mapping[str, Any] | None = None) -> ComputationGraph:
    """Follow ``tensor.grad_fn`` down to the leaves; raise ``NoGraph`` if there is no ``grad_fn``.

    ``names`` maps names to tensors (``{"x": x, "y": y}`` or ``globals()``): a leaf is named when
    ``AccumulateGrad.variable`` *is* that tensor, an operation when the tensor's ``grad_fn`` *is* the node.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"draw_graph attend un tenseur PyTorch, pas un objet de type {type(tensor).__name__}.")
    named = _named_tensors(names)
    root_name = next((k for k, v in named if v is tensor), None)
    if tensor.grad_fn is None:
        raise NoGraph(_no_graph_message(tensor, root_name))

    def name_of(fn: Any) -> tuple[str | None, torch.Size | None]:
        variable = getattr(fn, "variable", None)
        if variable is not None:
            return next((k for k, v in named if v is variable), None), variable.shape
        for k, v in named:
            if v.grad_fn is fn:
                return k, v.shape
        return None, None

    found: dict[int, GraphNode] = {}
    order: list[GraphNode] = []
    edges: list[tuple[GraphNode, GraphNode]] = []

    def make(fn: Any) -> GraphNode:
        name, shape = name_of(fn)
        node = GraphNode(
            fn=fn, kind=LEAF if hasattr(fn, "variable") else OP, op=type(fn).__name__, name=name, shape=shape
        )
        found[id(fn)] = node
        order.append(node)
        return node

    root = make(tensor.grad_fn)
    stack = [root]  # iterative depth-first walk: long chains must not hit the recursion limit
    while stack:
        node = stack.pop()
        new: list[GraphNode] = []
        for child_fn, _ in node.fn.next_functions:
            if child_fn is None:  # an input that does not require grad (a constant)
                continue
            child = found.get(id(child_fn))
            if child is None:
                child = make(child_fn)
                new.append(child)
            node.children.append(child)
            edges.append((node, child))
        stack.extend(reversed(new))
    root.kind = ROOT
    root.name = root_name or root.name or "sortie"
    root.shape = tensor.shape

    # Longest distance from the root: every edge goes from one layer to a deeper one.
    for node in _topological(root):
        for child in node.children:
            child.depth = max(child.depth, node.depth + 1)
    return ComputationGraph(root=root, nodes=order, edges=edges)


def _topological(root: GraphNode) -> list[GraphNode]:
    """Parents before children (iterative, so deep graphs do not hit the recursion limit)."""
    seen: set[int] = set()
    post: list[GraphNode] = []
    stack: list[tuple[GraphNode, int]] = [(root, 0)]
    while stack:
        node, i = stack.pop()
        if i == 0:
            if id(node) in seen:
                continue
            seen.add(id(node))
        if i < len(node.children):
            stack.append((node, i + 1))
            child = node.children[i]
            if id(child) not in seen:
                stack.append((child, 0))
        else:
            post.append(node)
    return post[::-1]


def graph_summary(tensor: torch.Tensor, names: Mapping[str, Any] | None = None) -> str:
    """The graph as an indented tree in French, from the output down to the leaves.

    A node reached a second time (a shared sub-expression) is not expanded again.
    """
    try:
        graph = walk_graph(tensor, names)
    except NoGraph as reason:
        return str(reason)
    header = french_spacing(f"Graphe de calcul de {graph.root.name} (de la sortie vers les feuilles) :")
    lines = [header, graph.root.describe() + "  ← sortie"]
    expanded: set[int] = {id(graph.root)}
    stack: list[tuple[GraphNode, str, bool]] = [
        (c, "", i == len(graph.root.children) - 1) for i, c in enumerate(graph.root.children)
    ][::-1]
    while stack:
        if len(lines) > MAX_SUMMARY_LINES:
            lines.append(f"… ({len(graph.nodes)} nœuds en tout)")
            break
        node, prefix, last = stack.pop()
        again = id(node) in expanded
        note = ""
        if again:
            note = " (même feuille)" if node.kind == LEAF else " (déjà décrit plus haut : nœud partagé)"
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.describe()}{french_spacing(note)}")
        if not again:
            expanded.add(id(node))
            inner = prefix + ("   " if last else "│  ")
            n = len(node.children)
            stack.extend((c, inner, i == n - 1) for i, c in reversed(list(enumerate(node.children))))
    return "\n".join(lines)


class GraphFigure(Figure):
    """A matplotlib Figure whose text representation is the graph's text tree.

    In a notebook the image is shown and the tree is stored as its ``text/plain`` alternative.
    """

    summary: str = ""

    def __repr__(self) -> str:
        return self.summary or super().__repr__()

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


class _Dummy:
    """A bend point of an edge that spans several layers (it reserves room so the edge avoids boxes)."""

    kind = "dummy"


@dataclass
class GraphLayout:
    """Where ``draw_graph`` puts things: node centres and, for each edge, the bend points it goes through."""

    centres: dict[int, tuple[float, float]]  # id(node or dummy) -> centre (inches)
    routes: list[tuple[GraphNode, GraphNode, list[tuple[float, float]], int, int]]  # parent, child, bends, k, count
    width: float
    height: float
    direction: str


def _layers_with_dummies(graph: ComputationGraph):
    """Layers by depth (0 = root) holding nodes and dummies, the adjacency between consecutive layers,
    and for each edge the chain of dummies it goes through."""
    depth_max = max(n.depth for n in graph.nodes)
    layers: list[list[Any]] = [[] for _ in range(depth_max + 1)]
    for node in graph.nodes:  # discovery order: first input first
        layers[node.depth].append(node)
    up: dict[int, list[Any]] = {id(n): [] for n in graph.nodes}
    down: dict[int, list[Any]] = {id(n): [] for n in graph.nodes}
    chains: list[list[_Dummy]] = []
    for parent, child in graph.edges:
        chain: list[_Dummy] = []
        previous: Any = parent
        for depth in range(parent.depth + 1, child.depth):
            dummy = _Dummy()
            layers[depth].append(dummy)
            up[id(dummy)], down[id(dummy)] = [], []
            chain.append(dummy)
            down[id(previous)].append(dummy)
            up[id(dummy)].append(previous)
            previous = dummy
        down[id(previous)].append(child)
        up[id(child)].append(previous)
        chains.append(chain)
    return layers, up, down, chains


def _crossings(layers: list[list[Any]], down: dict[int, list[Any]]) -> int:
    """Number of edge crossings between consecutive layers."""
    total = 0
    for upper, lower in zip(layers, layers[1:], strict=False):
        rank = {id(item): i for i, item in enumerate(lower)}
        edges = [(i, rank[id(child)]) for i, item in enumerate(upper) for child in down[id(item)]]
        total += sum(1 for a, b in edges for c, d in edges if a < c and b > d)
    return total


def _order(layers: list[list[Any]], up: dict[int, list[Any]], down: dict[int, list[Any]]) -> None:
    """Reorder each layer in place to limit crossings: barycentre sweeps, then swaps of neighbours.

    The best ordering met is kept.
    """

    def barycentre(item: Any, neighbours: list[Any], pos: dict[int, float]) -> float:
        return sum(pos[id(n)] for n in neighbours) / len(neighbours) if neighbours else pos[id(item)]

    def sweep(sequence: list[list[Any]], neighbours: dict[int, list[Any]]) -> None:
        pos = {id(item): float(i) for layer in layers for i, item in enumerate(layer)}
        for layer in sequence:
            layer.sort(key=lambda item: barycentre(item, neighbours[id(item)], pos))
            pos.update({id(item): float(i) for i, item in enumerate(layer)})

    best, best_count = [list(layer) for layer in layers], _crossings(layers, down)
    for _ in range(6):
        if best_count == 0:
            break
        sweep(layers[1:], up)
        sweep(layers[-2::-1], down)
        count = _crossings(layers, down)
        if count < best_count:
            best, best_count = [list(layer) for layer in layers], count
    layers[:] = best
    improved, passes = best_count > 0, 0
    while improved and passes < 4:  # greedy transpositions of neighbours
        improved, passes = False, passes + 1
        for layer in layers:
            for i in range(len(layer) - 1):
                layer[i], layer[i + 1] = layer[i + 1], layer[i]
                count = _crossings(layers, down)
                if count < best_count:
                    best_count, improved = count, True
                else:
                    layer[i], layer[i + 1] = layer[i + 1], layer[i]


def _cross_positions(
    layers: list[list[Any]], up: dict[int, list[Any]], down: dict[int, list[Any]], size: dict[int, float]
) -> dict[int, float]:
    """Positions across the layers: each item pulled towards its neighbours, order and spacing kept."""

    def separation(a: Any, b: Any) -> float:
        return (size[id(a)] + size[id(b)]) / 2 + CROSS_GAP

    pos: dict[int, float] = {}
    for layer in layers:  # packed and centred
        total = sum(size[id(item)] for item in layer) + CROSS_GAP * (len(layer) - 1)
        c = -total / 2
        for item in layer:
            pos[id(item)] = c + size[id(item)] / 2
            c += size[id(item)] + CROSS_GAP

    def place(layer: list[Any], neighbours: dict[int, list[Any]]) -> None:
        wanted = [
            sum(pos[id(n)] for n in neighbours[id(item)]) / len(neighbours[id(item)])
            if neighbours[id(item)]
            else pos[id(item)]
            for item in layer
        ]
        placed = list(wanted)
        for i in range(1, len(layer)):
            placed[i] = max(placed[i], placed[i - 1] + separation(layer[i - 1], layer[i]))
        shift = sum(w - p for w, p in zip(wanted, placed, strict=True)) / len(layer)
        for item, p in zip(layer, placed, strict=True):
            pos[id(item)] = p + shift

    for _ in range(8):
        for layer in layers[1:]:
            place(layer, up)
        for layer in layers[-2::-1]:
            place(layer, down)
    return pos


def layout_graph(graph: ComputationGraph, direction: str = "auto") -> GraphLayout:
    layers, up, down, chains = _layers_with_dummies(graph)
    _order(layers, up, down)
    sizes = {id(n): n.box_size for n in graph.nodes}
    horizontal_width = sum(
        max((sizes[id(i)][0] for i in layer if id(i) in sizes), default=0.1) for layer in layers
    ) + LAYER_GAP * (len(layers) - 1)
    if direction == "auto":
        direction = "horizontal" if horizontal_width <= MAX_HORIZONTAL_WIDTH else "vertical"
    main_axis, cross_axis = (0, 1) if direction == "horizontal" else (1, 0)
    dummy_size = 0.12
    cross_size = {id(i): sizes[id(i)][cross_axis] if id(i) in sizes else dummy_size for layer in layers for i in layer}
    cross = _cross_positions(layers, up, down, cross_size)
    low = min(cross[id(i)] - cross_size[id(i)] / 2 for layer in layers for i in layer)
    high = max(cross[id(i)] + cross_size[id(i)] / 2 for layer in layers for i in layer)

    # Along the main axis: the deepest layer (leaves) first, the root last.
    main: dict[int, float] = {}
    m = 0.0
    for layer in layers[::-1]:
        extent = max((sizes[id(i)][main_axis] for i in layer if id(i) in sizes), default=0.1)
        for item in layer:
            main[id(item)] = m + extent / 2
        m += extent + LAYER_GAP
    length = m - LAYER_GAP
    centres: dict[int, tuple[float, float]] = {}
    for key in main:
        c = cross[key] - low
        if direction == "horizontal":  # leaves on the left, output on the right, first input on top
            centres[key] = (main[key], (high - low) - c)
        else:  # leaves at the top, output at the bottom
            centres[key] = (c, length - main[key])
    width, height = (length, high - low) if direction == "horizontal" else (high - low, length)

    count: dict[tuple[int, int], int] = {}
    for parent, child in graph.edges:
        count[(id(parent), id(child))] = count.get((id(parent), id(child)), 0) + 1
    seen: dict[tuple[int, int], int] = {}
    routes = []
    for (parent, child), chain in zip(graph.edges, chains, strict=True):
        pair = (id(parent), id(child))
        k = seen.get(pair, 0)
        seen[pair] = k + 1
        routes.append((parent, child, [centres[id(d)] for d in chain], k, count[pair]))
    return GraphLayout(centres, routes, width, height, direction)


def _border_point(
    centre: tuple[float, float], size: tuple[float, float], towards: tuple[float, float]
) -> tuple[float, float]:
    """Where the segment from a box's centre towards a point leaves the box."""
    (cx, cy), (w, h) = centre, size
    dx, dy = towards[0] - cx, towards[1] - cy
    if dx == 0 and dy == 0:
        return centre
    t = min(w / 2 / abs(dx) if dx else float("inf"), h / 2 / abs(dy) if dy else float("inf"))
    return cx + dx * t, cy + dy * t


def _message_figure(message: str, title: str | None) -> GraphFigure:
    fig = GraphFigure(figsize=(7.5, 1.6 if not title else 2.0))
    fig.summary = message
    wrapped = "\n".join(textwrap.wrap(message.replace("`", ""), 80))
    ax = fig.add_axes((0, 0, 1, 1))  # an axes, so that IPython's inline formatter renders the figure too
    ax.set_axis_off()
    ax.text(0.5, 0.45, wrapped, ha="center", va="center", fontsize=10, transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def draw_graph(
    tensor: torch.Tensor,
    names: Mapping[str, Any] | None = None,
    ax: Any = None,
    title: str | None = None,
    direction: str = "auto",
    notes: Mapping[Any, list[tuple[str, str]]] | None = None,
    highlight: Any = None,
) -> Figure:
    """Draw the backward graph of ``tensor`` and return the figure.

    ``names``: ``{"x": x, "y": y}`` (or ``globals()``) to label leaves and named intermediate results.
    ``ax``: draw into an existing matplotlib Axes instead of a new figure.
    ``direction``: "horizontal" (leaves on the left), "vertical" (leaves at the top) or "auto".
    ``notes``: node (a ``grad_fn`` object) -> extra ``(text, colour)`` lines drawn in its box (values, gradients).
    ``highlight``: a node (``grad_fn`` object) drawn with a thick red border, its outgoing arrows in red.
    A tensor without ``grad_fn`` gives a figure with a French explanation instead of an error.
    """
    if direction not in ("auto", "horizontal", "vertical"):
        raise ValueError("direction doit valoir 'auto', 'horizontal' ou 'vertical'.")
    try:
        graph = walk_graph(tensor, names)
    except NoGraph as reason:
        if ax is not None:
            ax.set_axis_off()
            text = "\n".join(textwrap.wrap(str(reason).replace("`", ""), 60))
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
            return ax.figure
        return _message_figure(str(reason), title)
    if len(graph.nodes) > MAX_NODES:
        message = french_spacing(
            f"Graphe trop grand pour être dessiné lisiblement ({len(graph.nodes)} nœuds) : utilisez graph_summary()."
        )
        return _message_figure(message, title)
    for node in graph.nodes:
        node.notes = list((notes or {}).get(node.fn, ()))

    layout = layout_graph(graph, direction)
    width, height = layout.width, layout.height
    fig_w = max(width + 2 * MARGIN, MIN_FIGURE_WIDTH)
    ncol = 4 if fig_w >= 7.2 else 2
    legend_h = 0.45 if ncol == 4 else 0.7
    title_h = 0.45 if title else 0.0
    fig_h = height + 2 * MARGIN + legend_h + title_h
    left = -MARGIN - (fig_w - width - 2 * MARGIN) / 2
    if ax is None:
        fig = GraphFigure(figsize=(fig_w, fig_h))
        fig.summary = graph_summary(tensor, names)
        ax = fig.add_axes((0, 0, 1, 1))  # data coordinates are inches
    else:
        fig = ax.figure
        ax.set_aspect("equal")
    ax.set_xlim(left, left + fig_w)
    ax.set_ylim(-MARGIN - legend_h, height + MARGIN + title_h)
    ax.set_axis_off()

    boxes: dict[int, FancyBboxPatch] = {}
    for node in graph.nodes:
        (cx, cy), (w, h) = layout.centres[id(node)], node.box_size
        fill, edge = STYLES[node.kind]
        current = highlight is not None and node.fn is highlight
        box = FancyBboxPatch(
            (cx - w / 2, cy - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=fill,
            edgecolor=HIGHLIGHT_COLOUR if current else edge,
            linewidth=3.5 if current else 2.2 if node.kind == ROOT else 1.2,
            zorder=2,
        )
        ax.add_patch(box)
        boxes[id(node)] = box
        lines = node.label_lines
        colours = ["#1a1a1a"] * (len(lines) - len(node.notes)) + [colour for _, colour in node.notes]
        for i, line in enumerate(lines):
            ax.text(
                cx,
                cy + ((len(lines) - 1) / 2 - i) * LINE_HEIGHT,
                line,
                ha="center",
                va="center",
                family="monospace",
                fontsize=FONT_SIZE,
                fontweight="bold" if node.name is not None and i == 0 else "normal",
                color=colours[i],
                zorder=3,
            )

    # Arrows from each node to its inputs (backpropagation direction).
    arrow_style = {"arrowstyle": "-|>", "mutation_scale": 13, "color": ARROW_COLOUR, "linewidth": 1.2, "zorder": 1}
    for parent, child, bends, k, count in layout.routes:
        start, end = layout.centres[id(parent)], layout.centres[id(child)]
        flowing = highlight is not None and parent.fn is highlight
        style = dict(arrow_style, color=HIGHLIGHT_COLOUR, linewidth=2.4) if flowing else arrow_style
        if not bends:  # adjacent layers: a straight arrow, or fanned-out arcs when an input is used twice
            rad = 0.0 if count == 1 else -0.3 + 0.6 * k / (count - 1)
            arrow = FancyArrowPatch(
                start,
                end,
                patchA=boxes[id(parent)],
                patchB=boxes[id(child)],
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=1,
                shrinkB=1,
                **style,
            )
        else:  # through the bend points reserved by the layout
            points = [_border_point(start, parent.box_size, bends[0]), *bends]
            points.append(_border_point(end, child.box_size, bends[-1]))
            codes = [Path.MOVETO] + [Path.LINETO] * (len(points) - 1)
            arrow = FancyArrowPatch(path=Path(points, codes), **style)
        ax.add_patch(arrow)

    if title:
        ax.text(width / 2, height + MARGIN + title_h / 2, title, ha="center", va="center", fontsize=11.5)
    handles: list[Any] = [Patch(facecolor=STYLES[k][0], edgecolor=STYLES[k][1], label=LEGEND[k]) for k in LEGEND]
    arrow_glyph = "←" if layout.direction == "horizontal" else "↑"
    handles.append(Line2D([], [], color=ARROW_COLOUR, label=f"{arrow_glyph} sens de la rétropropagation"))
    ax.legend(
        handles=handles,
        loc="center",
        bbox_to_anchor=(width / 2, -MARGIN - legend_h / 2),
        bbox_transform=ax.transData,
        ncol=ncol,
        fontsize=8,
        frameon=False,
        handlelength=1.5,
        columnspacing=1.2,
    )
    return fig
