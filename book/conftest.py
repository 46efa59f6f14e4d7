"""nbval settings for the book's notebooks.

The plotly JSON mime bundle is a dict of raw floats (like PNG images, which nbval
already skips), so it is excluded from output comparison; its HTML twin is compared
after sanitising (``book/nbval_sanitize.cfg``). Every number a chapter claims is checked
by an ``assert``.

How: nbval compares every output key that is not in its collector's ``skip_compare``
    tuple (the
argument of its ``compare_outputs(test, ref, skip_compare=None)``). After collection,
the standard pytest hook :func:`pytest_collection_modifyitems` adds the plotly mime type
to that tuple of each notebook collected -- no nbval class or method is replaced.
Sanitizers cannot do
this: nbval applies them to strings only, and a JSON mime bundle is stored as a dict.
"""

import os

os.environ.setdefault("CL_BOOK_PROFILE", "quick")

PLOTLY_JSON = "application/vnd.plotly.v1+json"


def pytest_collection_modifyitems(session, config, items):
    """Skip the plotly JSON bundle in nbval's comparison of every collected notebook."""
    notebooks = {item.parent for item in items if hasattr(item.parent, "skip_compare")}
    for nb in notebooks:
        if PLOTLY_JSON not in nb.skip_compare:
            nb.skip_compare = tuple(nb.skip_compare) + (PLOTLY_JSON,)
