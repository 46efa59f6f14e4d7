"""Sphinx extension: serve plotly.js from the book's own ``_static`` folder.

Notebook outputs made by ``cl_lib.experiments.viz.show_plotly`` carry a ``<div>`` and a ``Plotly.newPlot``
call but not plotly.js itself (4+ MB per figure otherwise). This extension copies the
``plotly.min.js`` that ships inside the installed ``plotly`` Python package into the build and
adds it to every page, so the HTML book works offline with no CDN.
"""
import os
import shutil
import tempfile


def _add_plotly_js(app):
    import plotly

    src = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    static_dir = tempfile.mkdtemp(prefix="cl-book-static-")
    shutil.copy(src, os.path.join(static_dir, "plotly.min.js"))
    app.config.html_static_path.append(static_dir)


def setup(app):
    app.connect("builder-inited", _add_plotly_js)
    app.add_js_file("plotly.min.js", priority=200)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
