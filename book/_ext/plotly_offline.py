"""Sphinx extension: serve plotly.js from the book's own ``_static`` folder, only where used.

Notebook outputs made by ``cl_lib.experiments.viz.show_plotly`` carry a ``<div>`` and a
``Plotly.newPlot`` call (run after the page is parsed) but not plotly.js itself (4+ MB per
figure otherwise). This extension copies the ``plotly.min.js`` that ships inside the installed
``plotly`` Python package into the build and adds it, deferred, to the pages that draw a
plotly figure and to no other page, so the HTML book works offline with no CDN and pages
without figures do not download 4.8 MB.
"""
import os
import shutil
import tempfile

PLOTLY_MARKER = 'class="cl-plotly"'


def _add_plotly_static(app):
    import plotly

    src = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    static_dir = tempfile.mkdtemp(prefix="cl-book-static-")
    shutil.copy(src, os.path.join(static_dir, "plotly.min.js"))
    app.config.html_static_path.append(static_dir)


def _plotly_on_pages_that_use_it(app, pagename, templatename, context, doctree):
    if PLOTLY_MARKER in context.get("body", ""):
        app.add_js_file("plotly.min.js", priority=200, loading_method="defer")


def setup(app):
    app.connect("builder-inited", _add_plotly_static)
    app.connect("html-page-context", _plotly_on_pages_that_use_it)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
