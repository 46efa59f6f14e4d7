"""Drop repeated <script> entries from every page.

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = ...``)
each time ``env-before-read-docs`` fires; under this Sphinx that can happen twice, and
the second copy stops the browser with "Identifier 'THEBE_JS_URL' has already been
declared". Keeping the first copy of each script (same file, same inline body) removes
the console error.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attrs = getattr(script, "attributes", {}) or {}
        # an inline script has filename None or "" depending on who added it
        key = (getattr(script, "filename", str(script)) or "", attrs.get("body"))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    # in place: this list is the builder's own, to which later handlers still add
    # scripts (lazy_assets adds cl_lazy.js); the builder restores it before the next
    # page
    scripts[:] = kept


def setup(app):
    # early: a later handler may return a template name, which ends the event
    # (emit_firstresult)
    app.connect("html-page-context", _dedupe, priority=10)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
