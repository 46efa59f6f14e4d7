"""Figures for the book: one way to show a plotly figure that works everywhere.

``show_plotly(fig)`` emits one output with three representations:

- ``application/vnd.plotly.v1+json`` -- rendered live by JupyterLab's plotly extension;
- ``text/html`` -- a ``<div>`` plus a ``Plotly.newPlot`` call, *without* plotly.js; the
  built book loads plotly.js (deferred, and only on pages that draw a plotly figure)
  from its own ``_static`` folder (see ``book/_ext``), so the HTML works offline and
  notebooks stay small. The call waits for the page to finish parsing, when deferred
  scripts have run; animations never start by themselves;
- ``text/plain`` -- a one-line description (what a terminal shows).

The HTML part is wrapped in ``<div class="cl-plotly">...<!--/cl-plotly-->`` so that the
nbval sanitizer (``book/nbval_sanitize.cfg``) can replace the float payload, which is
not bit-reproducible across CPUs, by a fixed token; the numbers behind every figure are
checked by ``assert`` cells instead."""

from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display

_counter = {"n": 0}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "figure"


def _after_page_load(html: str) -> str:
    """
    Run the figure's inline script once the page is parsed (plotly.js loads deferred).
    """
    head, sep, rest = html.partition("<script>")
    if not sep:
        raise ValueError("plotly HTML without an inline <script>: cannot defer it")
    body, sep, tail = rest.rpartition("</script>")
    wrapped = (
        "(function () { var draw = function () {" + body + "};"
        " if (document.readyState === 'loading') {"
        " document.addEventListener('DOMContentLoaded', draw); } else { draw(); } })();"
    )
    return head + "<script>" + wrapped + "</script>" + tail


def show_plotly(fig: go.Figure, name: str | None = None) -> None:
    """Display a plotly figure in notebooks, the static HTML book and nbval alike."""
    _counter["n"] += 1
    title = (
        fig.layout.title.text
        if fig.layout.title and fig.layout.title.text
        else "figure"
    )
    div_id = f"cl-fig-{_slug(name or title)}-{_counter['n']}"
    html = pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        auto_play=False,
        config={"responsive": True, "displaylogo": False},
    )
    html = _after_page_load(html)
    bundle = {
        "application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
        "text/html": f'<div class="cl-plotly">{html}</div><!--/cl-plotly-->',
        "text/plain": f"<plotly figure: {title}>",
    }
    display(bundle, raw=True)


def hull_traces(x, visible: bool = True) -> list[go.Scatter3d]:
    """A configuration on $S^2$ as plotly traces: its convex hull's edges, its points.

    Used by chapter 2's slider of Thomson minimisers (one pair of traces per $M$).
    Coordinates are rounded to 4 decimals to keep the notebook small.

    Args:
        x: points, ``(M, 3)`` (a torch tensor or an array); with fewer than 4 points
            every pair is joined.
        visible: the traces' initial visibility.

    Returns:
        ``[edges, points]``: a ``lines`` and a ``markers`` ``go.Scatter3d``.
    """
    from scipy.spatial import ConvexHull

    pts = np.asarray(x, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"expected points of shape (M, 3), got {pts.shape}")
    if len(pts) >= 4:
        edges = {
            tuple(sorted((int(s[a]), int(s[b]))))
            for s in ConvexHull(pts).simplices
            for a, b in ((0, 1), (1, 2), (0, 2))
        }
    else:
        edges = {(i, j) for i in range(len(pts)) for j in range(i + 1, len(pts))}
    lines = [[], [], []]
    for i, j in sorted(edges):
        for k in range(3):
            lines[k] += [round(float(pts[i, k]), 4), round(float(pts[j, k]), 4), None]
    return [
        go.Scatter3d(
            x=lines[0],
            y=lines[1],
            z=lines[2],
            mode="lines",
            visible=visible,
            line={"color": "steelblue", "width": 3},
            hoverinfo="skip",
            showlegend=False,
        ),
        go.Scatter3d(
            x=pts[:, 0].round(4),
            y=pts[:, 1].round(4),
            z=pts[:, 2].round(4),
            mode="markers",
            visible=visible,
            marker={"size": 7, "color": "crimson"},
            name="points",
            showlegend=False,
        ),
    ]


def draw_pipeline(images=None, figsize=(10, 3.4)):
    """The SimCLR-style pipeline of every real-image chapter, as a matplotlib figure:
    an image, two random views, the shared encoder $f$ (backbone features $h$), the
    projection head $g$ (embeddings $z$), and the loss that pulls the two views of an
    image together and pushes the views of other images apart.

    Args:
        images: optional ``(image, view 1, view 2)``, each a (3, H, W) tensor or an
            (H, W, 3) array, values in [0, 1] (clipped), drawn in place of the grey
            placeholders.
        figsize: the figure's size in inches.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=figsize)
    ax.set(xlim=(0, 10), ylim=(0, 3.4))
    ax.axis("off")

    def box(x, y, w, h, text, colour):
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0.05", fc=colour, ec="0.3", lw=1
            )
        )
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center")

    def arrow(x0, y0, x1, y1, text=None):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.2))
        if text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, text, ha="center", va="bottom")

    def picture(x, y, img, label):
        if img is None:
            ax.add_patch(plt.Rectangle((x, y), 0.8, 0.8, fc="0.85", ec="0.3"))
        else:
            arr = img.permute(1, 2, 0).numpy() if hasattr(img, "permute") else img
            ax.imshow(arr.clip(0, 1), extent=(x, x + 0.8, y, y + 0.8), zorder=2)
        ax.text(x + 0.4, y - 0.12, label, ha="center", va="top")

    image, view1, view2 = images if images is not None else (None, None, None)
    picture(0.1, 1.3, image, "image $x$")
    for y, view, name in ((2.4, view1, "view 1"), (0.2, view2, "view 2")):
        arrow(0.95, 1.7, 1.75, y + 0.4, None)
        picture(1.8, y, view, name)
        arrow(2.65, y + 0.4, 3.35, y + 0.4)
        box(3.4, y + 0.05, 1.5, 0.7, "encoder $f$", "#dbe9f6")
        arrow(4.95, y + 0.4, 5.65, y + 0.4, "$h$")
        box(5.7, y + 0.05, 1.5, 0.7, "projector $g$", "#e5f5e0")
        arrow(7.25, y + 0.4, 8.1, 1.7 + (0.25 if y > 1 else -0.25), "$z$")
    box(8.15, 1.25, 1.75, 0.9, "loss:\npull together,\npush apart", "#fde0dd")
    ax.text(0.6, 2.7, "random\naugmentation", ha="center", va="center", color="0.35")
    ax.text(4.15, 1.7, "same weights", ha="center", va="center", color="0.35")
    fig.tight_layout()
    return fig


def draw_book_arc(seed: int = 0, figsize=(10, 3.2)):
    """The book's arc in four circles of 2-d unit embeddings, three classes in three
    colours: collapse onto a line (Part I), points that repel each other spread over
    the sphere (Part II), classes gathered at the vertices of a simplex (Part III), and
    that picture tested on real images, where classes overlap (Part IV). A schematic:
    positions are drawn, not learned.

    ``python -c "from cl_lib.experiments.viz import draw_book_arc;
    draw_book_arc().savefig('book/_static/arc.png', dpi=100)"`` makes the landing
    page's figure.

    Args:
        seed: fixes the jitter of the points.
        figsize: the figure's size in inches.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(3), 12)
    colours = np.array(["tab:blue", "tab:orange", "tab:green"])[classes]

    def on_circle(angle):
        return np.stack([np.cos(angle), np.sin(angle)], 1)

    line = np.where(rng.random(36) < 0.5, 0.0, np.pi) + rng.normal(0, 0.08, 36)
    spread = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    spread = rng.permutation(spread) + rng.normal(0, 0.03, 36)
    simplex = classes * 2 * np.pi / 3 + np.pi / 2 + rng.normal(0, 0.12, 36)
    panels = [
        ("I. Collapse", "three classes on one line", line),
        ("II. Energy", "repelling points spread out", spread),
        ("III. Classes", "each class at a vertex", simplex),
        ("IV. Images", "tested on images: noisier", simplex + rng.normal(0, 0.5, 36)),
    ]
    fig, axes = plt.subplots(1, 4, figsize=figsize)
    for ax, (title, sub, angle) in zip(axes, panels):
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="0.6", lw=1))
        z = on_circle(angle)
        ax.scatter(z[:, 0], z[:, 1], c=colours, s=22, zorder=2)
        ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal")
        ax.set_title(title)
        ax.set_xlabel(sub)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    fig.tight_layout()
    return fig


def plot_nscl_minimisers(triangle, tetrahedron, cosines, figsize=(9.5, 4.4)):
    """Chapter 6's figure of the NSCL minimisers, in the span of their class means.

    Left: the $C = 3$ views in 2-D on the regular simplex (a triangle); middle: the
    $C = 4$ views in 3-D with the edges of their simplex (a tetrahedron); right: the
    cosines of the $C = 4$ class means as a heat map.

    Args:
        triangle: ``(views, means, simplex, labels)`` for $C = 3$, as
            :func:`cl_lib.experiments.theory.simplex_view` returns them plus the
            ``(N,)`` labels: shapes ``(N K, 2)``, ``(3, 2)``, ``(3, 2)``.
        tetrahedron: the same for $C = 4$, in 3-D.
        cosines: ``(4, 4)`` cosines of the $C = 4$ class means.

    Returns:
        The matplotlib figure (not shown).
    """
    import matplotlib.pyplot as plt

    pts, mu, ref, lab = triangle
    pts4, _, ref4, lab4 = tetrahedron
    k = len(pts) // len(lab)  # views per sample
    fig = plt.figure(figsize=figsize)
    ax2 = fig.add_subplot(1, 3, 1)
    ax3 = fig.add_subplot(1, 3, 2, projection="3d")
    axc = fig.add_subplot(1, 3, 3)
    ax2.add_patch(plt.Circle((0, 0), 1, fill=False, color="gray", ls=":"))
    ax2.fill(*ref.T, alpha=0.15, color="k", label="regular simplex")
    ax2.scatter(
        *pts.T,
        c=lab.repeat_interleave(k),
        cmap="tab10",
        vmax=9,
        s=60,
        label="all views (NSCL minimiser)",
    )
    ax2.scatter(*mu.T, marker="x", color="k", s=60, label="class means")
    ax2.set(
        aspect="equal", xlim=(-1.6, 1.6), ylim=(-1.2, 2.3), title="C = 3: a triangle"
    )
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12))  # below the axes
    for i in range(len(ref4)):
        for j in range(i + 1, len(ref4)):
            ax3.plot(*ref4[[i, j]].T, color="k", alpha=0.4)
    k4 = len(pts4) // len(lab4)
    ax3.scatter(*pts4.T, c=lab4.repeat_interleave(k4), cmap="tab10", vmax=9, s=40)
    ax3.set(title="C = 4: a tetrahedron")
    cos = np.asarray(cosines)
    axc.imshow(cos, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(cos)):
        for j in range(len(cos)):
            color = "white" if i == j else "black"
            axc.text(j, i, f"{cos[i, j]:.2f}", ha="center", va="center", color=color)
    n = len(cos)
    axc.set(title="cosines of the C = 4 class means", xticks=range(n), yticks=range(n))
    fig.tight_layout()
    return fig
