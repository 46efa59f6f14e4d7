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

Module-level helpers serve the three chapters' seed groups alike: seed summaries
(:func:`summary`, :func:`seed_stats`), means along training (:func:`along`), tables of
verdicts between seed groups (:func:`verdicts`, :func:`difference_table`), the listing
of every results file (:func:`provenance_listing`), the runs present per tier
(:func:`presence`), a planned run's command (:func:`command`) and the 95% intervals of
a figure (:func:`error_bar`, :func:`interval_band`). The formatting helpers
(:func:`interval`, :func:`mean_interval`, :func:`points`, :func:`word`,
:func:`difference_rows`) print the book's verdicts (:func:`results.compare_table`) in
one way on every page.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cl_lib import stats as S
from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R

__all__ = [
    "KNN",
    "PROBE",
    "READOUTS",
    "Study",
    "along",
    "command",
    "difference_rows",
    "difference_table",
    "error_bar",
    "interval",
    "interval_band",
    "mean_interval",
    "points",
    "presence",
    "provenance_listing",
    "seed_stats",
    "summary",
    "verdicts",
    "word",
]

KNN, PROBE = "final.knn_acc", "final.linear_probe_acc"
READOUTS = {"kNN": KNN, "probe": PROBE}  # the two read-outs of every chapter's tables
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
        label = " + ".join(sections) or "all"
        n = len(self.runs(*sections))
        lines = [f"{label}: {self.present(*sections)} of {n} runs present"]
        return "\n".join(lines + self.example(*sections, width=width))

    def present(self, *sections: str) -> int:
        """How many planned runs of the sections (all with none) have a results
        file."""
        return len(self.runs(*sections)) - len(self.missing(*sections))

    def example(
        self, *sections: str, width: int = 80, lead: str = "pending; for example:"
    ) -> list[str]:
        """``[lead, command]`` of the first missing run of the sections (its
        :func:`command`), or ``[]`` when none is missing."""
        missing = self.missing(*sections)
        return [lead, command(missing[0], width)] if missing else []

    def pending(
        self, width: int = 80, label: str | None = None, by_section: bool = False
    ) -> str:
        """Every planned run with no results file, each with its command.

        Args:
            width: of the wrapped commands.
            label: the tier in the heading ``"2 pending <label> runs of this
                chapter"`` (default: the tier's name); runs that do not fit one GPU
                lease are marked ``(GPU server: hours)``.
            by_section: instead, one heading per section,
                ``"== <section>: k of n present"``, and the commands.
        """
        if by_section:
            lines = []
            for section, runs in self.sections.items():
                missing = G.missing_runs(runs, self.records)
                have = len(runs) - len(missing)
                lines.append(f"== {section}: {have} of {len(runs)} present")
                lines += [command(run, width) for run in missing]
            return "\n".join(lines)
        missing = self.missing()
        lines = [f"{len(missing)} pending {label or self.tier} runs of this chapter"]
        for run in missing:
            lines.append(
                f"- {run.name}" + ("" if run.lease else " (GPU server: hours)")
            )
            lines.append(command(run, width))
        return "\n".join(lines)

    def longest_run_s(self, speed: float = G.TARGET_VIEWS_PER_S) -> float:
        """The longest estimated run of the plan, in seconds at ``speed`` views per
        second (ResNet-18: 0.56 GFLOP per view)."""
        return max(G.estimate_seconds(run, speed * 0.56) for run in self.plan)

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
        """:func:`summary`: :func:`results.seed_summary` of a group, or None for an
        absent group."""
        return summary(recs, metric)

    def hardware(self) -> str:
        """``"CPU study, 2-core CPU, small convnet"``: the machines of the records."""
        cores = sorted({r["hardware"]["cpu_count"] for r in self.records} or {0})
        return f"CPU study, {'/'.join(map(str, cores))}-core CPU, small convnet"

    def provenance(self, width: int = 80) -> str:
        """One wrapped line per results file (:func:`results.provenance`), by name;
        ``""`` without files."""
        return "\n".join(
            textwrap.fill(R.provenance(r), width, subsequent_indent="    ")
            for r in sorted(self.records, key=R.run_name)
        )


def _same(planned: Any, wanted: Any) -> bool:
    if isinstance(planned, float) or isinstance(wanted, float):
        try:
            return math.isclose(float(planned), float(wanted), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return planned == wanted


# ------------------------------------------------------------ studies and groups
def command(run: G.PlannedRun, width: int = 80) -> str:
    """The trainer command of a planned run (:func:`grid.cli_command`), wrapped to
    ``width`` with ``\\`` continuations."""
    return G.wrap_command(G.cli_command(run), width=width)


def presence(
    studies: Mapping[str, Study], digits: int = 3, what: str = "planned runs present"
) -> str:
    """One line per tier, ``"cpu-study:  12 of  12 planned runs present"``: its runs
    with a results file (:meth:`Study.present`), counts padded to ``digits``."""
    return "\n".join(
        f"{tier:>9}: {s.present():{digits}d} of {len(s.plan):{digits}d} {what}"
        for tier, s in studies.items()
    )


def provenance_listing(
    studies: Mapping[str, Study], width: int = 80, headers: bool = False
) -> str:
    """:meth:`Study.provenance` of every tier, in order; with ``headers``, each
    tier's listing under ``"== <tier> (results/<tier>/<chapter>): n files"``."""
    lines = []
    for tier, study in studies.items():
        if headers:
            folder = f"results/{tier}/{study.chapter}"
            lines.append(f"== {tier} ({folder}): {len(study.records)} files")
        if study.records:
            lines.append(study.provenance(width))
    return "\n".join(lines)


def summary(recs: Sequence[Mapping] | None, metric: str = KNN):
    """:func:`results.seed_summary` of a seed group, or None for an absent (None or
    empty) group."""
    return R.seed_summary(recs, metric) if recs else None


def seed_stats(
    groups: Mapping[str, Sequence[Mapping]], metrics: Mapping[str, str] = READOUTS
) -> dict[tuple[str, str], R.SeedSummary]:
    """``{(group, read-out): seed summary}`` for every group and read-out."""
    return {
        (g, m): R.seed_summary(recs, key)
        for g, recs in groups.items()
        for m, key in metrics.items()
    }


def along(recs: Sequence[Mapping], key: str = "knn_acc") -> tuple[list, list]:
    """Epochs and the seed mean of a quantity tracked along training
    (``extra.tracking``), at the epochs every seed has."""
    tracks = [R.lookup(r, "extra.tracking", default=[]) for r in recs]
    epochs = sorted(set.intersection(*({t["epoch"] for t in tr} for tr in tracks)))
    values = [
        statistics.fmean(t[key] for tr in tracks for t in tr if t["epoch"] == e)
        for e in epochs
    ]
    return epochs, values


def verdicts(
    groups: Mapping,
    pairs: Iterable[tuple],
    reads: Mapping[str, str] = READOUTS,
    margin: float | None = S.MARGIN,
) -> dict:
    """The verdicts of one table of seed groups (Holm over it,
    :func:`results.compare_table`).

    Args:
        groups: key -> seed group.
        pairs: ``(a, b)`` keys to compare, in the table's order; a pair with a
            group absent (or ``a == b``) is left out.
        reads: read-out name -> metric; each pair is compared on each.
        margin: the equivalence margin (None: no equivalence verdict).

    Returns:
        ``{(a, b, read-out): Difference}`` ({} when no pair is present).
    """
    table = {
        (a, b, r): (summary(groups[a], key), summary(groups[b], key))
        for a, b in pairs
        if a != b and groups.get(a) and groups.get(b)
        for r, key in reads.items()
    }
    return R.compare_table(table, margin=margin) if table else {}


# ---------------------------------------------------------------------- formatting
def interval(
    s: R.SeedSummary, digits: int = 3, log: bool = False, one_seed: str = "(one seed)"
) -> str:
    """The 95% interval of a seed mean, ``"[0.397, 0.415]"``; for one seed, which
    has none, ``one_seed`` (formatted with the value: ``"{} (1 seed)"`` shows it).

    Args:
        digits: decimals, or significant digits with ``log``.
        log: the summary is of log10 values: show ``10**low``, ``10**high``.
    """
    f = (lambda v: f"{10**v:.{digits}g}") if log else (lambda v: f"{v:.{digits}f}")
    if s.n == 1:
        return one_seed.format(f(s.mean))
    return f"[{f(s.low)}, {f(s.high)}]"


def mean_interval(s: R.SeedSummary) -> str:
    """The seed mean and its 95% interval, ``"0.406 [0.397, 0.415]"``
    (``"0.406 (one seed)"``)."""
    return f"{s.mean:.3f} {interval(s)}"


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


def difference_table(found: Mapping, names: Mapping | None = None, **kwargs) -> str:
    """:func:`difference_rows` of :func:`verdicts`, rows ``"a vs b, read-out"``
    (``names``: key -> its name in the rows; the keys themselves without).

    Args:
        **kwargs: ``scale``, ``digits`` of :func:`difference_rows`.
    """
    names = names if names is not None else {}
    return difference_rows(
        found,
        lambda t: f"{names.get(t[0], t[0])} vs {names.get(t[1], t[1])}, {t[2]}",
        **kwargs,
    )


# ---------------------------------------------------------------------- figures
def error_bar(s: R.SeedSummary) -> float:
    """The half-width of a seed mean's 95% interval for an error bar; 0 for one
    seed (the point alone)."""
    return s.halfwidth if s.n > 1 else 0


def interval_band(ax, s: R.SeedSummary, **style) -> None:
    """Shade a seed mean's 95% interval across ``ax`` (``style``: of
    ``ax.axhspan``); nothing for one seed, which has none."""
    if s.n > 1:
        ax.axhspan(s.low, s.high, **style)
