"""Sphinx extension: ``cl_lib``'s docstrings as the library reference renders them.

The docstrings are written to be read in a terminal (``help(...)``), with LaTeX between
dollar signs and Google-style sections (napoleon). Before autodoc hands a docstring to
reStructuredText, this:

- turns ``$$...$$`` into a ``.. math::`` block and ``$...$`` into ``:math:`...```, so
  MathJax typesets the formulas (dollar signs inside ````literals```` are left alone);
- adds the blank line reStructuredText wants where an indented block (a list item's
  continuation, a wrapped line) is followed by a less indented line;
- re-pads simple tables whose cells are wider than their ``====`` borders;
- breaks a display formula too long for the column into two left-aligned lines.

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


_LONG_DISPLAY = 145  # TeX characters (a rough guide): wider than the column at 1280 px


def _split_point(tex: str) -> int | None:
    """Where to break a long formula: a top-level ``\\qquad`` if there is one, else the
    top-level ``+``, ``-`` or ``=`` nearest the middle (None: nowhere)."""
    depth, spots, qquads = 0, [], []
    for i, ch in enumerate(tex):
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif depth == 0 and ch in "+-=" and i > 0 and tex[i - 1] == " ":
            spots.append(i)
        if depth == 0 and tex.startswith("\\qquad", i):
            qquads.append(i)
    spots = qquads or [i for i in spots if 0.2 * len(tex) < i < 0.8 * len(tex)]
    return min(spots, key=lambda i: abs(i - len(tex) / 2)) if spots else None


def _break_long_display(lines: list[str]) -> list[str]:
    """A display formula longer than the column gets two left-aligned lines."""
    out, i = [], 0
    while i < len(lines):
        out.append(lines[i])
        if lines[i].strip() != ".. math::":
            i += 1
            continue
        ind, j, body = _indent(lines[i]), i + 1, []
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > ind):
            body.append(lines[j])
            j += 1
        tex = " ".join(" ".join(body).split())
        cut = _split_point(tex) if len(tex) > _LONG_DISPLAY else None
        if cut is None or "\\\\" in tex or "\\begin" in tex or ":" in tex[:1]:
            out.extend(body)
        else:
            pad = " " * (ind + 3)
            first, second = tex[:cut].strip(), tex[cut:].strip()
            if second.startswith("\\qquad"):
                second = second[len("\\qquad") :].strip()
            out += ["", f"{pad}& {first} \\\\", f"{pad}& \\qquad {second}", ""]
        i = j
    return out


def _process(app, what, name, obj, options, lines):
    new = _math_lines(list(lines))
    new = _fix_simple_tables(_blank_before_dedent(_break_long_display(new)))
    lines[:] = new


def setup(app):
    # after napoleon (priority 500): it has turned "Args:" sections into fields by then
    app.connect("autodoc-process-docstring", _process, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
