"""The chapter dependency graph drawn on the course-guide page."""

from __future__ import annotations

#: (chapter number, short title)
CHAPTERS = {
    1: "Inductive bias", 2: "Landscapes", 3: "Mean field", 4: "Langevin", 5: "LQR",
    6: "Representations", 7: "Deep linear", 8: "Linear convnets", 9: "Overparametrization",
    10: "ResNets & GNNs", 11: "Tractable nonconvex", 12: "Panel",
}

#: (a, b): chapter b uses an idea or result of chapter a
DEPENDENCIES = [
    (1, 2), (1, 6), (1, 7), (7, 8), (1, 8), (2, 3), (2, 4), (2, 5), (2, 9), (3, 9),
    (7, 9), (8, 9), (2, 11), (4, 11), (1, 10),
] + [(k, 12) for k in range(1, 12)]


def dependency_graph():
    """The dependency graph as a networkx DiGraph (nodes: chapter numbers)."""
    import networkx as nx

    graph = nx.DiGraph()
    for number, title in CHAPTERS.items():
        graph.add_node(number, title=title)
    graph.add_edges_from(DEPENDENCIES)
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("the chapter dependencies must not form a cycle")
    return graph


def plot_dependencies():
    """Draw the graph in layers: a chapter sits one layer below everything it depends on."""
    import networkx as nx

    from helpers.plotting import subplots

    graph = dependency_graph()
    layer = {}
    for node in nx.topological_sort(graph):
        layer[node] = 1 + max((layer[p] for p in graph.predecessors(node)), default=-1)
    for node, depth in layer.items():
        graph.nodes[node]["layer"] = depth
    pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=1.0)
    pos = {n: (x, -y) for n, (x, y) in pos.items()}  # first layer at the top
    fig, ax = subplots(1, 1, width=9.0, height=5.0)
    to_panel = [(a, b) for a, b in graph.edges if b == 12]
    other = [e for e in graph.edges if e[1] != 12]
    nx.draw_networkx_edges(graph, pos, edgelist=other, ax=ax, arrows=True, arrowsize=12,
                           edge_color="#555555", node_size=1800)
    nx.draw_networkx_edges(graph, pos, edgelist=to_panel, ax=ax, arrows=True, arrowsize=8,
                           edge_color="#cccccc", style="dotted", node_size=1800)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=1800, node_color="#dbe9f6", edgecolors="#1f77b4")
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=8,
                            labels={n: f"{n}\n{CHAPTERS[n]}" for n in graph.nodes})
    ax.set_axis_off()
    ax.set_title("Chapter dependencies (dotted: everything feeds the panel)")
    return fig
