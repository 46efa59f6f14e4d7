"""Sphinx extension: bibliography labels in author-year form, as the text cites.

The chapters cite with ``bibtex_reference_style = author_year`` ("Chen et al. [2020]"),
but pybtex's default label style gives the bibliography alpha labels ("[CKNH20]"), so a
reader cannot match a citation to its entry by eye. This registers the pybtex
formatting style ``authoryear`` (the ``unsrt`` entry format, entries sorted by author,
year and title, labels "Chen et al. 2020", "Li & Pimentel-Alarcón 2024"; a, b, ... added
where two entries would share a label), selected by ``bibtex_default_style`` in
``_config.yml``.
"""

from __future__ import annotations

import codecs
from collections import Counter

import latexcodec  # noqa: F401  (registers the 'ulatex' codec)

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _last_names(person) -> str:
    return " ".join(person.prelast_names + person.last_names)


def _plain(text: str) -> str:
    """LaTeX accents and braces to plain text ("Alarc{\\'o}n" -> "Alarcón")."""
    try:
        text = codecs.decode(text, "ulatex")
    except ValueError:  # not LaTeX latexcodec can read: keep it, minus the braces
        pass
    return text.replace("{", "").replace("}", "")


class AuthorYearLabelStyle(BaseLabelStyle):
    """ "Smith 2020", "Smith & Jones 2020", "Smith et al. 2020"; organisations as
    written."""

    def format_label(self, entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        if not people:
            who = entry.fields.get("organization") or entry.fields.get("title", "?")
            who = who.split(",")[0]
        elif len(people) == 1:
            who = _last_names(people[0])
        elif len(people) == 2:
            who = f"{_last_names(people[0])} & {_last_names(people[1])}"
        else:
            who = f"{_last_names(people[0])} et al."
        year = entry.fields.get("year", "n.d.")
        return _plain(f"{who} {year}")

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        count, seen = Counter(labels), Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                yield label + chr(ord("a") + seen[label])
                seen[label] += 1


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabelStyle
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
