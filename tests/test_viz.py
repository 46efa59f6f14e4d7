"""The book's drawings (cl_lib.experiments.viz)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from cl_lib.experiments.viz import draw_pipeline  # noqa: E402


def test_pipeline_diagram_names_every_stage_and_shows_the_images():
    texts = lambda fig: " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
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
