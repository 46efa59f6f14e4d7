"""A chapter's results joined to the plan that made them: what chapters 10-12 query.

A :class:`Study` is one chapter and one tier: the planned runs of
:mod:`cl_lib.experiments.grid` (each with its section, key and seed, written when it
was planned) and the results files under ``book/results/<tier>/<chapter>/``. It
answers the questions every chapter of Part IV asks -- which runs are present, the seed
groups of a section, a group by what was trained and with which settings, the seed
summary of a metric, what is still missing and the command that makes it -- so the
chapters keep only their own tables, figures and asserts. Nothing is read back out of
a file name: a record is matched to its planned run by name, and the planned run
carries its identity.

The few formatting helpers (:func:`interval`, :func:`points`, :func:`word`,
:func:`difference_rows`) print the book's verdicts (:func:`results.compare_table`) in
one way on every page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R

__all__ = [
    "KNN",
    "PROBE",
    "Study",
    "difference_rows",
    "interval",
    "points",
    "word",
]

KNN, PROBE = "final.knn_acc", "final.linear_probe_acc"
WORDS = {R.HIGHER: "above", R.LOWER: "below"}


class Study:
    """The results of one chapter and tier, with the plan behind them.

    Attributes:
        chapter, tier: e.g. ``"ch11"``, ``"cpu-study"``.
        sections: the plan by section (:func:`grid.chapter_grid`).
        plan: every planned run once, in priority order (:func:`grid.planned_runs`).
        records: the results files present (:func:`results.load_results`).
    """

    def __init__(self, chapter: str, tier: str, root: str | Path = "results"):
        self.chapter, self.tier = chapter, tier
        self.sections = G.chapter_grid(chapter, tier)
        self.plan = G.planned_runs(tier, chapter)
        self.records = R.load_results(Path(root) / tier / chapter)
        self._record = {R.run_name(r): r for r in self.records}
        self._run = {run.name: run for run in self.plan}
        # sections any tier plans for this chapter: another tier's section is empty
        # here, a name no tier knows is a mistake
        self._known = {s for t in G.TIERS for s in G.chapter_grid(chapter, t)}

    def __repr__(self) -> str:
        return (
            f"Study({self.chapter!r}, {self.tier!r}: {len(self.records)} of "
            f"{len(self.plan)} planned runs present)"
        )

    # ------------------------------------------------------------------ the plan
    def runs(self, *sections: str) -> list[G.PlannedRun]:
        """The planned runs of some sections (all with none), each name once, in
        plan order."""
        if not sections:
            return list(self.plan)
        unknown = [s for s in sections if s not in self._known]
        if unknown:
            raise KeyError(f"{self.chapter} plans no section {unknown} in any tier")
        runs = [run for s in sections for run in self.sections.get(s, [])]
        return list({run.name: run for run in runs}.values())

    def run(self, name: str) -> G.PlannedRun:
        """The planned run of a name (a record's :func:`results.run_name`)."""
        try:
            return self._run[name]
        except KeyError:
            raise KeyError(f"{name!r} is not planned in {self!r}") from None

    def key(self, name: str) -> str:
        """What a run trained (:attr:`grid.PlannedRun.key`), from its plan."""
        return self.run(name).key

    def missing(self, *sections: str) -> list[G.PlannedRun]:
        """Planned runs of the sections with no results file yet."""
        return G.missing_runs(self.runs(*sections), self.records)

    def unplanned(self) -> list[str]:
        """Names of results files that no planned run of this study makes."""
        return sorted(set(self._record) - set(self._run))

    def stale(self) -> list[str]:
        """Names of results files whose command is not their planned run's command
        (the grid changed after they were made): they must be re-run."""
        return sorted(
            name
            for name, r in self._record.items()
            if name in self._run and r.get("command") != G.cli_command(self._run[name])
        )

    def status(self, *sections: str, width: int = 80) -> str:
        """``"<sections>: k of n runs present"`` and, if some are missing, the
        command of the first one (every command: :meth:`missing` and
        :func:`grid.cli_command`)."""
        runs, missing = self.runs(*sections), self.missing(*sections)
        label = " + ".join(sections) or "all"
        lines = [f"{label}: {len(runs) - len(missing)} of {len(runs)} runs present"]
        if missing:
            lines += [
                "pending; for example:",
                G.wrap_command(G.cli_command(missing[0]), width=width),
            ]
        return "\n".join(lines)

    # ------------------------------------------------------------------ the results
    def groups(
        self, *sections: str, finished: bool = True, empty: bool = False
    ) -> dict[str, list[dict]]:
        """Seed groups of some sections: ``{seed-0 name: [records, seed order]}`` in
        plan order.

        Args:
            *sections: sections of the plan (all with none).
            finished: leave out runs that diverged (they have no accuracies).
            empty: also list groups with no record present (as ``[]``).
        """
        out: dict[str, list[dict]] = {}
        for run in self.runs(*sections):
            base = R.seed_base(run.name)
            record = self._record.get(run.name)
            keep = record is not None and not (finished and record.get("diverged"))
            if keep or (empty and base not in out):
                out.setdefault(base, [])
            if keep:
                out[base].append(record)
        for recs in out.values():
            recs.sort(key=lambda r: int(R.lookup(r, "config.seed", default=0) or 0))
        return out

    def by_key(self, *sections: str) -> dict[str, list[dict]]:
        """``{key: seed group}`` over some sections; where several groups share a
        key, the first in plan order."""
        out: dict[str, list[dict]] = {}
        for base, recs in self.groups(*sections).items():
            out.setdefault(self.key(base), recs)
        return out

    def find(self, key: str, *sections: str, **args: Any) -> list[dict] | None:
        """The first seed group (in plan order) of a key whose planned trainer flags
        match ``args`` (floats by :func:`math.isclose`; ``lr`` is the peak rate
        per 256 images, as the CLI takes it), or None if none is present.

        ``study.find("infonce", lr=1.0, weight_decay=0.0)``.
        """
        for base, recs in self.groups(*sections).items():
            run = self.run(base)
            if run.key == key and all(
                _same(run.args.get(k), v) for k, v in args.items()
            ):
                return recs
        return None

    def summary(self, recs: Sequence[Mapping] | None, metric: str = KNN):
        """:func:`results.seed_summary` of a group, or None for an absent group."""
        return R.seed_summary(recs, metric) if recs else None

    def hardware(self) -> str:
        """``"CPU study, 2-core CPU, small convnet"``: the machines of the records."""
        cores = sorted({r["hardware"]["cpu_count"] for r in self.records} or {0})
        return f"CPU study, {'/'.join(map(str, cores))}-core CPU, small convnet"


def _same(planned: Any, wanted: Any) -> bool:
    if isinstance(planned, float) or isinstance(wanted, float):
        try:
            return math.isclose(float(planned), float(wanted), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return planned == wanted


# ---------------------------------------------------------------------- formatting
def interval(s: R.SeedSummary) -> str:
    """The 95% interval of a seed mean, ``"[0.397, 0.415]"``; ``"(one seed)"`` for
    one seed, which has none."""
    return "(one seed)" if s.n == 1 else f"[{s.low:.3f}, {s.high:.3f}]"


def points(a: R.SeedSummary, b: R.SeedSummary) -> float:
    """``a - b`` of two seed means, in accuracy points."""
    return 100 * (a.mean - b.mean)


def word(d) -> str:
    """A verdict in the book's words: above, below, equivalent within ±1 point,
    undecided, one seed."""
    return WORDS.get(d.verdict, d.verdict)


def difference_rows(verdicts: Mapping, name, scale: float = 100, digits: int = 1):
    """A table of verdicts (:func:`results.compare_table`), one row each: the
    difference a - b with its 95% interval, p after Holm over the table, the verdict.

    Args:
        verdicts: label -> :class:`cl_lib.stats.Difference`.
        name: label -> the row's "a vs b" text.
        scale, digits: of the difference (100: accuracy points).
    """
    rows = [
        {
            "a vs b": name(label),
            "a - b [95%]": d.interval(scale=scale, digits=digits, unit=""),
            "p (Holm)": "--" if d.n_a < 2 or d.n_b < 2 else f"{d.p_adj:.3f}",
            "verdict": word(d),
        }
        for label, d in verdicts.items()
    ]
    return R.format_table(rows)
