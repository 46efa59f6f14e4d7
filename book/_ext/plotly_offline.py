"""Sphinx extension: serve plotly.js from the book's own ``_static`` folder.

Notebook outputs made by ``cl_lib.experiments.viz.show_plotly`` carry a ``<div>`` and
a ``Plotly.newPlot`` call (run after the page is parsed) but not plotly.js itself (4+ MB
per figure otherwise). This extension copies the ``plotly.min.js`` that ships inside the
installed ``plotly`` Python package into the build, so the HTML book works offline with
no CDN. ``lazy_assets`` loads it after the page, on the pages that draw a plotly figure
and on no other page.
"""

import os
import shutil
import tempfile


def _add_plotly_static(app):
    import plotly

    src = os.path.join(
        os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"
    )
    static_dir = tempfile.mkdtemp(prefix="cl-book-static-")
    shutil.copy(src, os.path.join(static_dir, "plotly.min.js"))
    app.config.html_static_path.append(static_dir)


def setup(app):
    app.connect("builder-inited", _add_plotly_static)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
