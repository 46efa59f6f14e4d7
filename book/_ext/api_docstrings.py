"""Sphinx extension: ``cl_lib``'s docstrings as the library reference renders them.

The docstrings are written to be read in a terminal (``help(...)``), with LaTeX between
dollar signs and Google-style sections (napoleon). Before autodoc hands a docstring to
reStructuredText, this:

- turns ``$$...$$`` into a ``.. math::`` block and ``$...$`` into ``:math:`...```, so
  MathJax typesets the formulas (dollar signs inside ````literals```` are left alone);
- adds the blank line reStructuredText wants where an indented block (a list item's
  continuation, a wrapped line) is followed by a less indented line;
- re-pads simple tables whose cells are wider than their ``====`` borders.

It changes only the reference pages, never the docstrings in the source.
"""

from __future__ import annotations

import re

# a literal (``...``) or a math span; literals are matched first so that their dollar
# signs are skipped
_SPAN = re.compile(
    r"``.+?``|\$\$(?P<display>.+?)\$\$|\$(?P<inline>[^$\s`](?:[^$`]*?[^$\s`])?)\$", re.S
)
_BULLET = re.compile(r"^\s*[-*+] ")
_BORDER = re.compile(r"^(\s*)(=+)(\s+=+)+\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _math(text: str, ind: str) -> str:
    def repl(m: re.Match) -> str:
        if m.group("display") is not None:
            body = " ".join(m.group("display").split())
            return f"\n\n{ind}.. math::\n\n{ind}   {body}\n\n{ind}"
        if m.group("inline") is not None:  # may span lines: a role may, in a paragraph
            role = ":math:`" + m.group("inline") + "`"
            before = text[m.start() - 1] if m.start() > 0 else " "
            after = text[m.end()] if m.end() < len(text) else " "
            # a role must stand apart from the words around it; "\ " is an escaped
            # space, which separates without printing
            if not (before.isspace() or before in "([{'\"/-"):
                role = "\\ " + role
            if not (after.isspace() or after in ".,;:!?)]}'\"/-"):
                role += "\\ "
            return role
        return m.group(0)

    return _SPAN.sub(repl, text)


def _math_lines(lines: list[str]) -> list[str]:
    """Apply :func:`_math` paragraph by paragraph (math may span lines); a display
    block takes its paragraph's indentation."""
    out, para = [], []

    def flush():
        if not para:
            return
        text = "\n".join(para)
        if "$" not in text:
            out.extend(para)
        else:
            new = _math(text, " " * _indent(para[0]))
            out.extend(ln if ln.strip() else "" for ln in new.split("\n"))
        para.clear()

    for line in lines:
        if not line.strip():
            flush()
            out.append(line)
        elif para and _indent(line) != _indent(para[-1]) and "$" not in "\n".join(para):
            flush()
            para.append(line)
        else:
            para.append(line)
    flush()
    return out


def _blank_before_dedent(lines: list[str]) -> list[str]:
    out: list[str] = []
    bullet = None  # indentation of the list whose item the previous line belongs to
    for line in lines:
        if not line.strip():
            bullet = None
        elif out and out[-1].strip() and not _BORDER.match(out[-1]):
            ends_block = _indent(line) < _indent(out[-1])
            # a paragraph straight after a list, at the list's own indentation
            ends_list = bullet == _indent(line) and not _BULLET.match(line)
            if ends_block or ends_list:
                out.append("")
                bullet = None
        if _BULLET.match(line):
            bullet = _indent(line)
        out.append(line)
    return out


def _fix_simple_tables(lines: list[str]) -> list[str]:
    """Re-pad simple tables: cells are split at runs of two or more spaces."""
    out, i = [], 0
    while i < len(lines):
        m = _BORDER.match(lines[i])
        ends = [j for j in range(i + 1, len(lines)) if _BORDER.match(lines[j])]
        if not m or len(ends) < 2:
            out.append(lines[i])
            i += 1
            continue
        end = ends[1]
        ind = m.group(1)
        ncol = len(lines[i].split())
        rows = []
        for line in lines[i : end + 1]:
            if _BORDER.match(line):
                rows.append(None)
                continue
            body = line[len(ind) :]
            cells = re.split(r"\s{2,}", body.strip())
            if body.startswith(" "):  # continuation line: the first column is empty
                cells = [""] + cells
            cells += [""] * (ncol - len(cells))
            rows.append(cells[: ncol - 1] + ["  ".join(cells[ncol - 1 :]).strip()])
        widths = [max([len(r[c]) for r in rows if r] + [1]) for c in range(ncol)]
        for r in rows:
            if r is None:
                out.append(ind + "  ".join("=" * w for w in widths))
            else:
                out.append(
                    (ind + "  ".join(c.ljust(w) for c, w in zip(r, widths))).rstrip()
                )
        i = end + 1
    return out


def _process(app, what, name, obj, options, lines):
    new = _fix_simple_tables(_blank_before_dedent(_math_lines(list(lines))))
    lines[:] = new


def setup(app):
    # after napoleon (priority 500): it has turned "Args:" sections into fields by then
    app.connect("autodoc-process-docstring", _process, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
