"""nbval settings for the book's notebooks.

The plotly JSON mime bundle is a dict of raw floats (like PNG images, which nbval already skips),
so it is excluded from output comparison; its HTML twin is compared after sanitising
(``book/nbval_sanitize.cfg``). Every number a chapter claims is checked by an ``assert``.
"""
import os

os.environ.setdefault("CL_BOOK_PROFILE", "quick")

try:
    from nbval import plugin as _nbval_plugin

    _orig_init = _nbval_plugin.IPyNbFile.__init__

    def _init(self, *args, **kwargs):
        _orig_init(self, *args, **kwargs)
        self.skip_compare = tuple(self.skip_compare) + ("application/vnd.plotly.v1+json",)

    _nbval_plugin.IPyNbFile.__init__ = _init
except ImportError:  # nbval absent: nothing to configure
    pass
