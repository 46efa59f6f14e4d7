"""The book's drawings (cl_lib.experiments.viz)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from cl_lib.experiments.viz import draw_pipeline  # noqa: E402


def test_pipeline_diagram_names_every_stage_and_shows_the_images():
    texts = lambda fig: " ".join(
        t.get_text() for t in fig.findobj(matplotlib.text.Text)
    )
    empty = draw_pipeline()
    for stage in ("image", "view 1", "view 2", "encoder", "projector", "loss"):
        assert stage in texts(empty), stage
    assert not empty.axes[0].images  # grey placeholders, no pictures
    rng = np.random.default_rng(0)
    pics = [rng.uniform(-0.1, 1.1, (3, 8, 8)).transpose(1, 2, 0) for _ in range(3)]
    drawn = draw_pipeline(tuple(pics))
    assert len(drawn.axes[0].images) == 3
    assert all(im.get_array().max() <= 1 for im in drawn.axes[0].images)  # clipped


def test_book_arc_has_four_parts_and_its_landing_page_image_is_committed():
    from pathlib import Path

    from PIL import Image

    from cl_lib.experiments.viz import draw_book_arc

    fig = draw_book_arc()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["I. Collapse", "II. Energy", "III. Classes", "IV. Images"]
    png = Path(__file__).resolve().parents[1] / "book" / "_static" / "arc.png"
    assert Image.open(png).size[0] >= 688  # at least the column's width
    assert "_static/arc.png" in (png.parents[1] / "intro.md").read_text()


def test_hull_traces_draws_every_hull_edge_once():
    import pytest

    from cl_lib.experiments.sphere import icosahedron, regular_simplex
    from cl_lib.experiments.viz import hull_traces

    edges, points = hull_traces(icosahedron(), visible=False)
    assert edges.mode == "lines" and points.mode == "markers"
    assert edges.visible is False and len(points.x) == 12
    assert len(edges.x) == 3 * 30  # 30 edges, each "a, b, None"
    triangle, _ = hull_traces(regular_simplex(3, 3))  # < 4 points: all pairs
    assert len(triangle.x) == 3 * 3
    with pytest.raises(ValueError):
        hull_traces(np.zeros((4, 2)))


def test_nscl_minimiser_figure_has_three_panels():
    import torch

    from cl_lib.experiments import theory as th
    from cl_lib.experiments.viz import plot_nscl_minimisers

    _, end3, lab3 = th.nscl_free_points(3, tau=0.5, steps=20)
    _, end4, lab4 = th.nscl_free_points(4, tau=0.5, steps=20)
    tri, tet = th.simplex_view(end3, lab3), th.simplex_view(end4, lab4)
    mu = torch.nn.functional.normalize(tet[1], dim=1)
    fig = plot_nscl_minimisers((*tri, lab3), (*tet, lab4), mu @ mu.T)
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "C = 3: a triangle",
        "C = 4: a tetrahedron",
        "cosines of the C = 4 class means",
    ]
    assert len(fig.axes[2].texts) == 16
