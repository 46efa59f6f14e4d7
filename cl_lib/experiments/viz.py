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
