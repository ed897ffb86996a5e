import matplotlib
import networkx as nx
import pytest

from helpers import course

matplotlib.use("Agg")


def test_dependency_graph_is_a_dag_over_all_chapters():
    g = course.dependency_graph()
    assert set(g.nodes) == set(range(1, 13))
    assert nx.is_directed_acyclic_graph(g)
    assert all(a < b for a, b in g.edges), "a chapter depends only on earlier chapters"
    assert nx.ancestors(g, 12) == set(range(1, 12))


def test_cycle_is_rejected(monkeypatch):
    monkeypatch.setattr(course, "DEPENDENCIES", [(1, 2), (2, 1)])
    with pytest.raises(ValueError, match="cycle"):
        course.dependency_graph()


def test_plot_draws_every_chapter():
    fig = course.plot_dependencies()
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert all(any(t.startswith(f"{n}\n") for t in labels) for n in range(1, 13))
