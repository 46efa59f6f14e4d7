"""Sphinx extension: plotly.js and the widget scripts load after the page, where used.

A page with a plotly figure (``class="cl-plotly"``, see ``plotly_offline``) or an
ipywidgets view gets one small deferred script, ``_static/cl_lazy.js``, which loads
plotly.js and the widget manager once the page's load event has fired (and makes the
figures and widgets wait for them). No other page gets it. The widget scripts myst-nb
would add to the page's head (``nb_ipywidgets_js``) are switched off in ``_config.yml``:
they are 4.4 MB that held chapter 1's load event for seconds.
"""

from __future__ import annotations

MARKERS = ('class="cl-plotly"', "application/vnd.jupyter.widget-view+json")


def _lazy_loader(app, pagename, templatename, context, doctree):
    body = context.get("body", "")
    if any(marker in body for marker in MARKERS):
        app.add_js_file("cl_lazy.js", priority=200, loading_method="defer")


def setup(app):
    app.connect("html-page-context", _lazy_loader)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
