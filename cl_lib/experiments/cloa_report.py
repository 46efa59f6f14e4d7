"""Chapter 10's tables, figures and printed read-outs: the CLOA learning-rate study.

Chapter 10 asks whether training a small convnet on CIFAR-10 at a large learning
rate over-fuses its embeddings, and whether the CLOA anchor term changes accuracy.
This module holds everything the chapter prints or draws that is not a question of
its own: the seed groups of the rate sweep and their untrained references
(:class:`CloaData`), the accuracy tables with their verdicts (the book's rule,
:func:`results.compare_table`), the figures, the sweep and geometry read-outs, the
comparison with the paper's Table 3 and the provenance listing. The notebook keeps
the asserts that check each statement of its text.

Every function takes the :class:`CloaData` of :func:`load` and returns a string
(the notebook prints it) or the numbers its asserts read.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from cl_lib import get_profile
from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R
from cl_lib.experiments.study import (
    READOUTS,
    Study,
    along,
    command,
    difference_table,
    error_bar,
    interval,
    interval_band,
    mean_interval,
    verdicts,
)
from cl_lib.experiments.study import (
    provenance_listing as listing,
)

__all__ = [
    "ACC",
    "NAMES",
    "PAPER_STEPS",
    "PAPER_TABLE3",
    "RANK",
    "REFS",
    "SWEEP",
    "VAR_RAW",
    "VAR_SPHERE",
    "CloaData",
    "load",
    "log_var",
]

TIERS = ("cpu-study", "quick", "full")
RATES = ("baseline", "key rates", "sweep")  # the rate sweep, not its controls
WIDTH = 78  # printed lines fit the page column
# run-name prefix -> the paper's name for the loss (its Table 3)
NAMES = {
    "infonce": "InfoNCE",
    "cloa": "CLOA-InfoNCE",
    "dcl": "DCL",
    "cloa_dcl": "CLOA-DCL",
}
REFS = {"untrained": "untrained", "untrained_bn": "untrained, BN re-est."}
ORDER = [*REFS, *NAMES]
PAIRS = [("infonce", "cloa"), ("dcl", "cloa_dcl")]  # (base loss, base + anchor)
KEY_RATES = (1.0, 1e-3)  # the paper's "strong" and "mild" learning
ACC = READOUTS  # kNN and probe accuracy
RANK = "extra.final.effective_rank_features"
VAR_RAW = "extra.final.embedding_variance_features"
VAR_SPHERE = "extra.final.embedding_variance_sphere_features"
ALL_RATES = G.TIERS["cpu-study"]["ch10"]["lrs"]
SWEEP = sorted(ALL_RATES)  # 1e-5 ... 1
# quoted: Li & Pimentel-Alarcón 2024, Table 3 (fine-tuning accuracy, 10/50/100%)
PAPER_TABLE3 = {
    "infonce": (0.3147, 0.4071, 0.4382),
    "cloa": (0.6856, 0.6939, 0.7009),
    "dcl": (0.3514, 0.4288, 0.4884),
    "cloa_dcl": (0.6521, 0.6634, 0.6793),
}
PAPER_STEPS = 100 * math.ceil(50_000 / 128)  # Sec. 5: 100 epochs, batch 128


def log_var(r: Mapping) -> float:
    """log10 of the raw embedding variance: it spans orders of magnitude."""
    return math.log10(R.lookup(r, VAR_RAW))


def rate(group: Sequence[Mapping]) -> float:
    """The peak learning rate of a seed group."""
    return R.peak_lr(group[0])


def fill(text: str, indent: str = "    ", **kw) -> str:
    """``textwrap.fill`` to the page column with a hanging indent."""
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, **kw)


def pm(s: R.SeedSummary, digits: int = 3) -> str:
    """'mean ± sd' (just the mean for one seed)."""
    if s.n == 1:
        return f"{s.mean:.{digits}f}"
    return f"{s.mean:.{digits}f} ± {s.sd:.{digits}f}"


def per_seed(recs: Sequence[Mapping], key) -> str:
    """The values of a metric over the seeds, smallest first: '3.4, 5.3, 18'."""
    return ", ".join(f"{v:.2g}" for v in sorted(R.lookup(r, key) for r in recs))


class CloaData:
    """The chapter's results: the three tiers, the sweep's seed groups, the two
    untrained references and the verdicts of Section 2 (every run against both).

    Attributes:
        studies: ``{tier: Study}``; cpu, quick, full: their records.
        groups: the CPU study's rate-sweep seed groups (finished runs), by name.
        untrained, untrained_bn: the references' seed groups (or None).
        references: those present; diverged: names of diverged CPU-study runs.
        section2: the verdicts of :func:`against_refs` on ``groups``.
    """

    def __init__(self, root: str = "results"):
        self.studies = {tier: Study("ch10", tier, root) for tier in TIERS}
        self.cpu, self.quick, self.full = (s.records for s in self.studies.values())
        self.keys = {run.name: run.key for s in self.studies.values() for run in s.plan}
        self.groups = self.seed_groups("cpu-study")
        self.untrained = self.groups.get("untrained")
        self.untrained_bn = self.groups.get("untrained_bn")
        self.references = [
            g for g in (self.untrained, self.untrained_bn) if g is not None
        ]
        self.diverged = sorted(R.run_name(r) for r in self.cpu if r.get("diverged"))
        self.section2 = against_refs(self, self.groups, self.references)

    def seed_groups(self, tier: str) -> dict[str, list[dict]]:
        """The rate sweep's seed groups of a tier's finished runs, by name."""
        return dict(sorted(self.studies[tier].groups(*RATES).items()))

    def loss_of(self, name: str) -> str:
        """'cloa_dcl_lr1_s2' -> 'cloa_dcl' (its planned key)."""
        return self.keys[name]

    def find(self, loss: str, eta: float, groups=None) -> list[dict] | None:
        """The seed group of a loss at a learning rate, or None if none is present."""
        for name, recs in (self.groups if groups is None else groups).items():
            if self.loss_of(name) == loss and math.isclose(rate(recs), eta):
                return recs
        return None

    def label(self, name: str, recs: Sequence[Mapping]) -> str:
        """'InfoNCE, lr 0.001' for a seed group."""
        return f"{NAMES[self.loss_of(name)]}, lr {rate(recs):g}"

    def ordered(self, groups: Mapping) -> list:
        """Untrained first, then by loss and learning rate (largest first)."""
        return sorted(
            groups.items(),
            key=lambda kv: (ORDER.index(self.loss_of(kv[0])), -rate(kv[1])),
        )

    def status(self, recs: Sequence[Mapping]) -> str:
        """A run's 'beats' entry in Section 2's table."""
        name = R.seed_base(R.run_name(recs[0]))
        return beats_in(self.section2, name, len(self.references))

    def trained(self, recs: Sequence[Mapping]) -> bool | None:
        """Whether a run is above both untrained references on at least one
        accuracy (Section 2); None for one seed (no verdict)."""
        s = self.status(recs)
        return None if s == "one seed" else s != "no"

    def sweep(self) -> dict[tuple[str, float], list[dict]]:
        """``(loss, rate) -> seed group`` over the sweep, for the runs present."""
        return {
            (loss, eta): g
            for loss in NAMES
            for eta in SWEEP
            if (g := self.find(loss, eta)) is not None
        }

    def steps(self) -> int | None:
        """SGD steps of a stored CPU-study run (None before any finished)."""
        finished = [r for r in self.cpu if not r.get("diverged")]
        if not finished:
            return None
        r = finished[0]
        return R.lookup(r, "config.epochs") * R.lookup(r, "steps_per_epoch")


def load(root: str = "results") -> CloaData:
    """The chapter's results under ``root`` (``book/results`` from ``book/``)."""
    return CloaData(root)


# ---------------------------------------------------------------- Section 1: plan
def overview(d: CloaData) -> str:
    """The active profile and the number of results files per tier."""
    return (
        f"active profile: {get_profile()}\n"
        f"results files: CPU study {len(d.cpu)} ({len(d.diverged)} diverged), quick "
        f"{len(d.quick)}, full {len(d.full)}"
    )


def plan_report(d: CloaData) -> str:
    """The stored runs' recipe and, per planned section, how many runs are present
    (with the command of one for a section with none)."""
    study = d.studies["cpu-study"]
    plan = {s: runs for s, runs in study.sections.items() if runs}
    finished = [r for r in d.cpu if not r.get("diverged")]
    lines = []
    if finished:
        ex = finished[0]
        lines.append(
            f"recipe of the stored runs: {R.lookup(ex, 'dataset.train_size')} "
            f"training images, {R.lookup(ex, 'dataset.test_size')} test images,\n"
            f"batch {R.lookup(ex, 'config.batch_size')}, "
            f"{R.lookup(ex, 'steps_per_epoch')} steps per epoch"
        )
    for section, runs in plan.items():
        have = study.present(section)
        state = "pending" if have == 0 else f"{have} of {len(runs)} runs present"
        lines.append(f"CPU study, {section}: {state}")
        if have == 0:
            lines.append("  for example:")
            lines.append(textwrap.indent(command(runs[0], WIDTH - 2), "  "))
    lines.append("every stored file matches its planned command" if d.cpu else "")
    return "\n".join(lines)


def steps_report(d: CloaData) -> str:
    """The SGD steps of the paper and of the CPU study, and the paper's InfoNCE."""
    lines = []
    if d.steps() is not None:
        ratio = PAPER_STEPS / d.steps()
        lines.append(
            f"SGD steps: paper {PAPER_STEPS:,}, CPU study {d.steps():,} "
            f"({ratio:.0f}x fewer)"
        )
    quoted = PAPER_TABLE3["infonce"][2]
    lines.append(f"the paper's InfoNCE, all labels (Table 3): {quoted:.2f}")
    return "\n".join(lines)


def pending_runs(d: CloaData) -> str:
    """Every planned CPU-study run with no results file yet, by section."""
    study = d.studies["cpu-study"]
    lines = []
    for section, runs in study.sections.items():
        if not runs:
            continue
        names = ", ".join(run.name for run in study.missing(section)) or "none"
        lines.append(fill(f"{section}: {names}"))
    return "\n".join(lines)


def provenance_listing(d: CloaData) -> str:
    """One line per results file (:func:`results.provenance`), then the pending
    runs: the chapter's one collapsed provenance block."""
    lines = [listing(d.studies, WIDTH), "", "planned runs with no file yet:"]
    return "\n".join([*lines, pending_runs(d)])


# ---------------------------------------------------------- Section 2: did it train?
def against_refs(d: CloaData, groups: Mapping, refs: Sequence) -> dict:
    """The verdicts of one accuracy table: every run against every reference on both
    accuracies, Holm over the table. ``{(name, reference index, short): Difference}``.
    """
    runs = [name for name in groups if d.loss_of(name) not in REFS]
    pairs = [(name, j) for name in runs for j in range(len(refs))]
    return verdicts({**groups, **dict(enumerate(refs))}, pairs, ACC)


def beats_in(verdicts: Mapping, name: str, n_refs: int, side: str = R.HIGHER) -> str:
    """On which accuracies a run is above every reference (``side=R.LOWER``: below
    every one): 'both', 'kNN', 'probe', 'no', or 'one seed' (no verdict)."""
    ds = [verdicts[(name, j, s)] for j in range(n_refs) for s in ACC]
    if any(d.verdict == R.ONE_SEED for d in ds):
        return "one seed"
    above_all = [
        s
        for s in ACC
        if all(verdicts[(name, j, s)].verdict == side for j in range(n_refs))
    ]
    return {0: "no", 1: above_all[0] if above_all else "no", 2: "both"}[len(above_all)]


def accuracy_table(d: CloaData, groups: Mapping, base, refs=None) -> str:
    """kNN and probe per run (mean ± sd); Δ against ``base``; "beats": above every
    group of ``refs`` (default ``base``)."""
    refs = refs or [base]
    verdicts = against_refs(d, groups, refs) if base is not None else {}
    rows = []
    for name, recs in d.ordered(groups):
        loss = d.loss_of(name)
        row = {
            "run": NAMES.get(loss, REFS.get(loss, loss)),
            "lr": "--" if loss in REFS else f"{rate(recs):g}",
            "n": len(recs),
        }
        for short, key in ACC.items():
            row[short] = pm(R.seed_summary(recs, key))
        for short, key in ACC.items():
            gap = "--"
            if base is not None and loss not in REFS:
                diff = R.seed_summary(recs, key).mean - R.seed_summary(base, key).mean
                gap = f"{100 * diff:+.1f}"
            row[f"Δ {short}"] = gap
        if base is not None:
            row["beats"] = "--" if loss in REFS else beats_in(verdicts, name, len(refs))
        rows.append(row)
    return R.format_table(rows)


def accuracy_report(d: CloaData) -> str:
    """Section 2's table with its title and notes."""
    lines = [
        f"{d.studies['cpu-study'].hardware()}: test accuracy (mean ± sd over n seeds)",
        accuracy_table(d, d.groups, d.untrained, d.references),
        (
            "Δ: against the untrained network as initialised; "
            "beats: above both references"
        ),
    ]
    if d.diverged:
        lines.append(
            textwrap.fill("diverged (no accuracy): " + ", ".join(d.diverged), WIDTH)
        )
    return "\n".join(lines)


STYLE = {
    "infonce": {"marker": "o", "color": "C0"},
    "cloa": {"marker": "s", "color": "C1", "linestyle": ":"},
    "dcl": {"marker": "^", "color": "C2"},
    "cloa_dcl": {"marker": "D", "color": "C3", "linestyle": ":"},
}


def plot_accuracy(d: CloaData, groups: Mapping, base, title: str, rates=ALL_RATES):
    """kNN and probe accuracy against the learning rate, one line per loss, with
    95% intervals over seeds and the untrained network's interval in grey."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.0))
    for ax, (short, key) in zip(axes, ACC.items()):
        if base is not None:
            style = {"color": "grey", "alpha": 0.3, "label": "untrained"}
            interval_band(ax, R.seed_summary(base, key), **style)
        for i, loss in enumerate(NAMES):
            pts = sorted(
                [
                    (rate(recs), R.seed_summary(recs, key))
                    for name, recs in groups.items()
                    if d.loss_of(name) == loss
                ],
                key=lambda p: p[0],
            )
            if not pts:
                continue
            # the four losses side by side at each rate
            x = [eta * 10 ** (0.07 * (i - 1.5)) for eta, _ in pts]
            ax.errorbar(
                x,
                [s.mean for _, s in pts],
                yerr=[error_bar(s) for _, s in pts],
                capsize=3,
                label=NAMES[loss],
                **STYLE[loss],
            )
        ax.set_xscale("log")
        ax.set_xlim(min(rates) / 3, max(rates) * 3)
        ax.set(xlabel=r"learning rate $\eta$ (SGD)", ylabel=f"{short} accuracy")
        ax.grid(True, alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=5)
    fig.suptitle(title)
    plt.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend below
    plt.show()


def reference_verdicts(d: CloaData) -> dict:
    """The two references against each other, a table of its own:
    ``{short: Difference}`` of BN re-estimated minus as initialised."""
    return R.compare_table(
        {
            s: (R.seed_summary(d.untrained_bn, k), R.seed_summary(d.untrained, k))
            for s, k in ACC.items()
        }
    )


def headline_report(d: CloaData, ref_v: Mapping) -> str:
    """InfoNCE at lr 1 against both references, the references against each other,
    and the runs with three seeds not above both references / with one seed."""
    head = d.find("infonce", 1.0)
    name = R.seed_base(R.run_name(head[0]))
    chance = 1 / R.lookup(d.untrained[0], "dataset.num_classes")
    to_init = [d.section2[(name, 0, s)] for s in ACC]
    lines = [
        f"InfoNCE at lr 1 ({len(head)} seeds) against the network as initialised:\n"
        + "\n".join(f"  {s} {x.interval()}: {x.verdict}" for s, x in zip(ACC, to_init))
        + f"\nabove both references on: {d.status(head)}; chance is {chance:.2f}"
    ]
    for short, x in ref_v.items():
        s_bn, s0 = (
            R.seed_summary(g, ACC[short]) for g in (d.untrained_bn, d.untrained)
        )
        lines.append(
            f"references, {short}: untrained, BN re-est. {mean_interval(s_bn)},\n"
            f"  untrained {mean_interval(s0)}: difference {x.interval()}, {x.verdict}"
        )
    knn_bn, knn0, knn_lr1 = (
        R.seed_summary(g, ACC["kNN"]) for g in (d.untrained_bn, d.untrained, head)
    )
    gain_bn, gain_lr1 = (
        100 * (knn_bn.mean - knn0.mean),
        100 * (knn_lr1.mean - knn0.mean),
    )
    x = d.section2[(name, 1, "kNN")]
    lines.append(
        f"kNN gain over the network as initialised: BN re-estimation {gain_bn:+.1f} "
        f"points,\nInfoNCE at lr 1 {gain_lr1:+.1f} points; InfoNCE at lr 1 against "
        f"untrained, BN re-est.:\n  {x.interval()}, p {x.p:.3f}, "
        f"Holm {x.p_adj:.3f}: {x.verdict}"
    )
    runs = [(n, g) for n, g in d.ordered(d.groups) if n not in REFS]
    for title, state in (
        ("three seeds, not above both references", False),
        ("one seed, no verdict", None),
    ):
        names = [n for n, g in runs if d.trained(g) is state]
        text = "; ".join(d.label(n, d.groups[n]) for n in names) or "none"
        lines.append(fill(f"{title}: {text}", break_on_hyphens=False))
    return "\n".join(lines)


# ------------------------------------------------------------ Section 2: the sweep
def sweep_verdicts(sweep: Mapping) -> dict:
    """lr 1 against every smaller rate, both accuracies, Holm over the table:
    ``{(loss, rate, short): Difference}``."""
    return R.compare_table(
        {
            (loss, eta, short): (
                R.seed_summary(sweep[(loss, 1.0)], key),
                R.seed_summary(sweep[(loss, eta)], key),
            )
            for loss in NAMES
            if (loss, 1.0) in sweep
            for eta in SWEEP[:-1]
            if (loss, eta) in sweep
            for short, key in ACC.items()
        }
    )


def trains_at(d: CloaData, sweep: Mapping) -> dict[str, list[float]]:
    """Per loss with a run at lr 1: the rates whose run is above both references."""
    return {
        loss: [
            eta
            for eta in SWEEP
            if (loss, eta) in sweep and d.trained(sweep[(loss, eta)])
        ]
        for loss in NAMES
        if (loss, 1.0) in sweep
    }


def sweep_report(d: CloaData, sweep: Mapping, top: Mapping) -> str:
    """kNN seed means over the sweep, then per loss: the rates that trained and the
    differences lr 1 minus each smaller rate (verdicts where there are seeds)."""
    rows = [  # the untrained references: one network, the same at every rate
        {"loss": REFS[ref]}
        | {f"lr {eta:g}": f"{R.seed_summary(g, ACC['kNN']).mean:.3f}" for eta in SWEEP}
        for ref, g in (("untrained", d.untrained), ("untrained_bn", d.untrained_bn))
    ]
    for loss, title in NAMES.items():
        row = {"loss": title}
        for eta in SWEEP:
            g = sweep.get((loss, eta))
            row[f"lr {eta:g}"] = (
                "pending" if g is None else f"{R.seed_summary(g, ACC['kNN']).mean:.3f}"
            )
        rows.append(row)
    lines = ["kNN accuracy (seed means; one seed at 1e-5, 1e-2 and 1e-1)"]
    lines.append(R.format_table(rows))
    for loss, etas in trains_at(d, sweep).items():
        beaten = "lr " + ", ".join(f"{eta:g}" for eta in etas) if etas else "no rate"
        mine = {(eta, s): x for (name, eta, s), x in top.items() if name == loss}
        decided = [
            f"{short} {x.interval(unit='')} {x.verdict}"
            for (eta, short), x in mine.items()
            if x.verdict != R.ONE_SEED
        ]
        singles = [
            f"{eta:g} " + "/".join(f"{100 * mine[(eta, s)].diff:+.1f}" for s in ACC)
            for eta in SWEEP[:-1]
            if (eta, "kNN") in mine and mine[(eta, "kNN")].verdict == R.ONE_SEED
        ]
        lines.append(
            fill(
                f"{NAMES[loss]}: above both references (three seeds) at {beaten}; lr 1 "
                f"minus lr 1e-3: {', '.join(decided)}; minus the one-seed rates "
                f"(kNN/probe, points, no verdict): {', '.join(singles)}"
            )
        )
    return "\n".join(lines)


# ------------------------------------------------------- Section 3: rank over time
ALONG = [
    ("knn_acc", "final.knn_acc", "kNN accuracy"),
    ("effective_rank_features", RANK, "effective rank"),
    ("embedding_variance_features", VAR_RAW, "embedding variance (raw)"),
    ("embedding_variance_sphere_features", VAR_SPHERE, "variance on the sphere"),
]
# blue: the paper's "mild" rate, red: its "strong" rate (as in Section 7)
RATE_COLOR = {1e-5: "C4", 1e-3: "C0", 1e-2: "C2", 1e-1: "C1", 1.0: "C3"}
BASE_STYLE = {"infonce": "-", "dcl": "--"}  # line style by base loss


def _along_legend(rates: set) -> list:
    """The legend of :func:`plot_along`: rates by colour, losses and references by
    line style."""
    handles = [
        Line2D([], [], color=RATE_COLOR[eta], marker="o", label=f"lr {eta:g}")
        for eta in sorted(rates)
        if eta in RATE_COLOR
    ]
    return handles + [
        Line2D([], [], color="k", linestyle=BASE_STYLE["infonce"], label="InfoNCE"),
        Line2D([], [], color="k", linestyle=BASE_STYLE["dcl"], label="DCL"),
        Line2D([], [], color="grey", linestyle="--", label="untrained"),
        Line2D([], [], color="grey", linestyle=":", label="untrained, BN re-est."),
    ]


def plot_along(d: CloaData, groups: Mapping, base, title: str, base_bn=None):
    """kNN, effective rank and the two variances along training (seed means), one
    column without and one with the anchor; the references as grey lines."""
    fig, axes = plt.subplots(len(ALONG), 2, figsize=(10, 11), sharex=True, sharey="row")
    rates = set()
    for col, anchored in enumerate((False, True)):
        drawn = 0
        for name, recs in d.ordered(groups):
            loss = d.loss_of(name)
            if loss in REFS or loss.startswith("cloa") != anchored:
                continue
            drawn += 1
            rates.add(rate(recs))
            base_loss = "infonce" if loss in ("infonce", "cloa") else "dcl"
            for row, (key, _, _) in enumerate(ALONG):
                axes[row, col].plot(
                    *along(recs, key),
                    color=RATE_COLOR.get(rate(recs), "k"),
                    linestyle=BASE_STYLE[base_loss],
                    marker="o",
                    markersize=4,
                )
        for row, (key, final_key, label) in enumerate(ALONG):
            ax = axes[row, col]
            for ref, style in ((base, "--"), (base_bn, ":")):
                if ref is not None:
                    level = R.seed_summary(ref, final_key).mean
                    ax.axhline(level, color="grey", linestyle=style, linewidth=1.2)
            if key == "embedding_variance_features":
                ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        axes[0, col].set_title("with the CLOA anchor" if anchored else "without anchor")
        if not drawn:
            axes[0, col].text(
                0.5, 0.5, "pending", transform=axes[0, col].transAxes,
                ha="center", color="grey",
            )  # fmt: skip
        axes[-1, col].set_xlabel("epoch")
    fig.legend(handles=_along_legend(rates), loc="lower center", ncol=4)
    fig.suptitle(title)
    plt.tight_layout(rect=(0, 0.07, 1, 0.97))
    plt.show()


def course_report(d: CloaData) -> str:
    """The references' final rank, then every run's rank and kNN along training."""
    rank0 = R.seed_summary(d.untrained, RANK)
    rank_bn = R.seed_summary(d.untrained_bn, RANK)
    lines = [
        (
            f"final effective rank (1,000 test images): untrained {pm(rank0, 1)},\n"
            f"untrained, BN re-est. {pm(rank_bn, 1)}; along training (500 test "
            "images,\nseed means):"
        )
    ]
    notes = {True: "", False: " (not above both references)", None: " (one seed)"}
    for name, recs in d.ordered(d.groups):
        if name in REFS:
            continue
        epochs, ranks = along(recs, "effective_rank_features")
        knns = along(recs, "knn_acc")[1]
        low = ranks.index(min(ranks))
        lines.append(
            f"{d.label(name, recs)}: rank "
            + " -> ".join(f"{v:.0f}" for v in ranks)
            + f" (lowest at epoch {epochs[low]}),\n{'':>4}kNN "
            + " -> ".join(f"{v:.3f}" for v in knns)
            + notes[d.trained(recs)]
        )
    return "\n".join(lines)


def final_ranks(sweep: Mapping) -> dict[str, dict[float, float]]:
    """Seed means of the final effective rank over the sweep, per loss and rate."""
    return {
        loss: {
            eta: R.seed_summary(sweep[(loss, eta)], RANK).mean
            for eta in SWEEP
            if (loss, eta) in sweep
        }
        for loss in NAMES
    }


def rank_courses(d: CloaData) -> dict[str, dict]:
    """Per loss with runs at lr 1 and lr 1e-3: each seed's rank at the first
    checkpoint (``first_hi``, ``first_lo``), the seed-mean rank along training
    (``hi``, ``lo``, at ``epochs``) and ``gap``: lr 1e-3 minus lr 1, first and last."""
    out = {}
    for loss in NAMES:
        hi, lo = d.find(loss, 1.0), d.find(loss, 1e-3)
        if hi is None or lo is None:
            continue
        first_hi, first_lo = (
            [r["extra"]["tracking"][0]["effective_rank_features"] for r in g]
            for g in (hi, lo)
        )
        epochs, rank_hi = along(hi, "effective_rank_features")
        rank_lo = along(lo, "effective_rank_features")[1]
        out[loss] = {
            "first_hi": first_hi,
            "first_lo": first_lo,
            "epochs": epochs,
            "hi": rank_hi,
            "lo": rank_lo,
            "gap": (rank_lo[0] - rank_hi[0], rank_lo[-1] - rank_hi[-1]),
        }
    return out


def rank_report(d: CloaData, final_rank: Mapping, courses: Mapping) -> str:
    """Final ranks over the sweep, InfoNCE's seeds at lr 1 against the untrained
    network, and the rank gap between lr 1e-3 and lr 1, first and last checkpoint."""
    lines = [
        fill(
            f"{NAMES[loss]}, final rank by lr: "
            + ", ".join(f"{eta:g} {v:.1f}" for eta, v in ranks.items())
        )
        for loss, ranks in final_rank.items()
    ]
    head = d.find("infonce", 1.0)
    tracks = [r["extra"]["tracking"] for r in head]
    rank0 = R.seed_summary(d.untrained, RANK)
    rank_bn = R.seed_summary(d.untrained_bn, RANK)
    lines.append(
        f"InfoNCE, lr 1, {len(head)} seeds: final / lowest rank "
        + ", ".join(
            f"{tr[-1]['effective_rank_features']:.0f} / "
            f"{min(t['effective_rank_features'] for t in tr):.0f}"
            for tr in tracks
        )
    )
    lines.append(
        "  rank at epoch 2 (500 images): "
        + ", ".join(f"{tr[0]['effective_rank_features']:.1f}" for tr in tracks)
        + f";\n  untrained, final (1,000 images): {rank0.mean:.1f}, interval from "
        f"{rank0.low:.1f}"
    )
    lines.append(
        f"every run at lr >= 1e-3 ends below untrained, BN re-est. (interval from "
        f"{rank_bn.low:.1f})"
    )
    for loss, c in courses.items():
        first, last = c["gap"]
        lines.append(
            f"{NAMES[loss]}: rank at lr 1e-3 minus at lr 1, epoch {c['epochs'][0]} -> "
            f"{c['epochs'][-1]}: {first:.1f} -> {last:.1f}"
        )
    return "\n".join(lines)


# ------------------------------------------------------- Section 4: the variance
VARIANCES = (("raw variance", VAR_RAW, log_var), ("sphere", VAR_SPHERE, VAR_SPHERE))
ONE = "{} (1 seed)"  # a variance of one seed: its value alone (no interval)


def variance_table(d: CloaData) -> str:
    """Raw variance, variance on the sphere (95% intervals) and final rank per run."""
    rows = []
    for name, recs in d.ordered(d.groups):
        loss = d.loss_of(name)
        raw, sph = R.seed_summary(recs, log_var), R.seed_summary(recs, VAR_SPHERE)
        rows.append(
            {
                "run": NAMES.get(loss, REFS.get(loss, loss)),
                "lr": "--" if loss in REFS else f"{rate(recs):g}",
                "n": len(recs),
                "var raw (95%)": interval(raw, 2, log=True, one_seed=ONE),
                "var sphere (95%)": interval(sph, 2, one_seed=ONE),
                "eff. rank": pm(R.seed_summary(recs, RANK), 1),
            }
        )
    hw = d.studies["cpu-study"].hardware()
    return f"{hw}: variance and rank (1,000 test images)\n" + R.format_table(rows)


def both_rates(d: CloaData) -> dict[str, tuple]:
    """``{loss: (group at lr 1, group at lr 1e-3)}`` for the losses with both."""
    out = {}
    for loss in NAMES:
        hi, lo = d.find(loss, 1.0), d.find(loss, 1e-3)
        if hi is not None and lo is not None:
            out[loss] = (hi, lo)
    return out


def sweep_variances(sweep: Mapping) -> dict[str, dict[float, tuple]]:
    """Per loss and rate: the raw variance of each run and the sphere's seed mean."""
    return {
        loss: {
            eta: (
                [R.lookup(r, VAR_RAW) for r in sweep[(loss, eta)]],
                R.seed_summary(sweep[(loss, eta)], VAR_SPHERE).mean,
            )
            for eta in SWEEP
            if (loss, eta) in sweep
        }
        for loss in NAMES
    }


def rate_variance_verdicts(both: Mapping) -> dict:
    """lr 1 against lr 1e-3 on log10 raw variance and on the sphere, one table, Holm
    over it, no equivalence margin: ``{(loss, what): Difference}``."""
    return R.compare_table(
        {
            (loss, what): (R.seed_summary(hi, fit), R.seed_summary(lo, fit))
            for loss, (hi, lo) in both.items()
            for what, _, fit in VARIANCES
        },
        margin=None,
    )


def rate_verdicts(both: Mapping, rate_v: Mapping, loss: str) -> list[str]:
    """lr 1 against lr 1e-3 for a loss: per-seed values and verdicts."""
    hi, lo = both[loss]
    return [
        f"{what} {per_seed(hi, key)} vs {per_seed(lo, key)}: "
        + rate_v[(loss, what)].verdict
        for what, key, _ in VARIANCES
    ]


def strong_groups(d: CloaData) -> dict[str, list[dict]]:
    """The seed groups at lr 1 that are above both references (Section 2)."""
    trained = {n: g for n, g in d.groups.items() if n not in REFS and d.trained(g)}
    return {n: g for n, g in trained.items() if math.isclose(rate(g), 1.0)}


def variance_report(d: CloaData, sweep: Mapping, rate_v: Mapping) -> str:
    """The variances over the sweep, the references', InfoNCE's fall along
    training at lr 1 and, per loss, lr 1 against lr 1e-3."""
    lines = []
    for loss, v in sweep_variances(sweep).items():
        raw = ", ".join(
            f"{eta:g} " + "/".join(f"{x:.2g}" for x in xs) for eta, (xs, _) in v.items()
        )
        sph = ", ".join(f"{eta:g} {s:.2f}" for eta, (_, s) in v.items())
        lines.append(fill(f"{NAMES[loss]}, by lr: raw variance {raw}; sphere {sph}"))
    raw0, raw_bn = (R.seed_summary(g, log_var) for g in (d.untrained, d.untrained_bn))
    sph0, sph_bn = (
        R.seed_summary(g, VAR_SPHERE) for g in (d.untrained, d.untrained_bn)
    )
    strong = strong_groups(d)
    head = d.find("infonce", 1.0)
    raw_along = along(head, "embedding_variance_features")[1]
    sphere_along = along(head, "embedding_variance_sphere_features")[1]
    both = both_rates(d)
    lines += [
        (
            f"raw variance: untrained {10**raw0.mean:.3f}, untrained, BN re-est. "
            f"{10**raw_bn.mean:.1f};\non the sphere {sph0.mean:.2f} and "
            f"{sph_bn.mean:.2f}"
        ),
        f"trained runs at lr 1 without the over-fusion signature: {len(strong)}",
        (
            f"InfoNCE, lr 1: raw variance falls {max(raw_along) / raw_along[-1]:.1f}"
            f"-fold from its peak;\nvariance on the sphere {sphere_along[0]:.2f} -> "
            f"{sphere_along[-1]:.2f}"
        ),
        textwrap.fill(
            "raw variance, every seed at lr 1 below every seed at lr 1e-3: "
            + ", ".join(NAMES[loss] for loss in both),
            WIDTH,
            break_on_hyphens=False,
        ),
    ]
    for loss, title in NAMES.items():
        if loss not in both:
            lines.append(f"{title}: lr 1 vs 1e-3 pending (runs missing)")
            continue
        note = (
            ""
            if d.trained(both[loss][1])
            else (" (lr 1e-3 has not beaten the untrained network)")
        )
        text = "; ".join(rate_verdicts(both, rate_v, loss))
        line = f"{title}, lr 1 vs 1e-3: " + text + note
        lines.append(fill(line, break_on_hyphens=False))
    return "\n".join(lines)


# ------------------------------------------------------- the effective step
def step_groups(d: CloaData) -> dict[tuple[str, float, float], list[dict]]:
    """The "effective step" section's seed groups by ``(loss, eta, weight decay)``,
    in plan order."""
    return {
        (d.loss_of(name), R.peak_lr(recs[0]), recs[0]["config"]["weight_decay"]): recs
        for name, recs in d.studies["cpu-study"].groups("effective step").items()
    }


def effective_step(d: CloaData) -> tuple[str, dict]:
    """Draw the first convolution's norm and the effective step eta/|W1|^2 along
    training (InfoNCE), and return the table of every setting's final values with
    ``{(loss, eta, wd): final norm of the first convolution, seed mean}``."""
    study = d.studies["cpu-study"]
    rows, step_end = [], {}
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    for (key, eta, wd), recs in step_groups(d).items():
        tracks = [r["extra"]["tracking"] for r in recs]
        epochs = [t["epoch"] for t in tracks[0]]
        w1 = np.array([[t["conv_weight_norms"][0] for t in tr] for tr in tracks])
        w1 = w1.mean(0)
        step_end[key, eta, wd] = w1[-1]
        color = f"C{[0.1, 1.0, 3.0].index(eta)}"
        style = {"color": color, "ls": "-" if wd else "--"}
        if key == "infonce":
            axes[0].plot(epochs, w1, "o", **style, label=f"lr {eta:g}, wd {wd:g}")
            axes[1].plot(epochs, eta / w1**2, "o", **style)
        rows.append(
            {
                "loss": NAMES[key],
                "lr": f"{eta:g}",
                "wd": f"{wd:g}",
                "n": len(recs),
                "kNN": f"{R.seed_summary(recs, ACC['kNN']).mean:.3f}",
                "probe": f"{R.seed_summary(recs, ACC['probe']).mean:.3f}",
                "|W1|": f"{w1[-1]:.1f}",
                "lr/|W1|^2": f"{eta / w1[-1] ** 2:.4f}",
            }
        )
    axes[0].set(xlabel="epoch", ylabel=r"$\|W_1\|$ (first convolution)")
    axes[1].set(xlabel="epoch", ylabel=r"effective step $\eta/\|W_1\|^2$")
    axes[1].set_yscale("log")
    axes[1].yaxis.set_major_locator(plt.LogLocator(subs=(1, 2, 5)))
    axes[1].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[1].yaxis.set_minor_formatter(plt.NullFormatter())  # no minor labels
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3)
    plt.tight_layout(rect=(0, 0.16, 1, 1))  # room for the legend below
    plt.show()
    text = [
        f"{study.hardware()}: the effective step, seed means at the end of training",
        R.format_table(rows) if rows else "pending: no run filed yet",
        study.status("effective step", width=WIDTH),
    ]
    return "\n".join(text), step_end


COLLINEARITY = "extra.final.class_mean_collinearity_centred_features"
# the comparisons the effective step predicts an outcome for: (label, a, b), each a
# (loss, eta, weight decay) of the "effective step" section
STEP_PAIRS = (
    ("eta 3: wd 5e-4 - none", ("infonce", 3.0, 5e-4), ("infonce", 3.0, 0.0)),
    ("eta 0.1: wd 5e-4 - none", ("infonce", 0.1, 5e-4), ("infonce", 0.1, 0.0)),
    ("no wd: eta 3 - 0.1", ("infonce", 3.0, 0.0), ("infonce", 0.1, 0.0)),
    ("wd 5e-4: eta 3 - 0.1", ("infonce", 3.0, 5e-4), ("infonce", 0.1, 5e-4)),
)


def effective_step_verdicts(d: CloaData) -> tuple[str, dict]:
    """The effective step's predictions as differences: accuracy (kNN, probe) and the
    centred collinearity of the class means of h (chapter 1's over-fusion
    diagnostic) for :data:`STEP_PAIRS`, Holm over the table; ``(text, {(label,
    measure): Difference})``, or a pending line while a setting has under 3 seeds."""
    by = step_groups(d)
    wanted = {s for _, a, b in STEP_PAIRS for s in (a, b)}
    if any(len(by.get(s, [])) < 3 for s in wanted):
        return "effective step: verdicts pending (three seeds per setting)", {}
    measures = {**ACC, "collinearity": COLLINEARITY}
    found = R.compare_table(
        {
            (label, m): (R.seed_summary(by[a], key), R.seed_summary(by[b], key))
            for label, a, b in STEP_PAIRS
            for m, key in measures.items()
        },
        margin=None,
    )
    lines = ["a - b (Welch, Holm over the table; accuracies in points)"]
    for (label, m), diff in found.items():
        scale, unit = (100, "points") if m in ACC else (1, "")
        shown = diff.interval(scale, 1 if m in ACC else 3, unit)
        lines.append(f"  {label:24s} {m:12s} {shown}: {diff.verdict}")
    return "\n".join(lines), found


# ------------------------------------------------------- Section 5: the anchor
def anchor_verdicts(d: CloaData) -> dict:
    """Anchored minus base loss at each key rate on both accuracies, Holm over the
    table: ``{(anchored, base, eta, short): Difference}``."""
    return R.compare_table(
        {
            (anchored, base, eta, short): (
                R.seed_summary(d.find(anchored, eta), key),
                R.seed_summary(d.find(base, eta), key),
            )
            for base, anchored in PAIRS
            for eta in KEY_RATES
            if d.find(anchored, eta) and d.find(base, eta)
            for short, key in ACC.items()
        }
    )


def anchor_report(d: CloaData, anchor: Mapping) -> str:
    """The anchor table: differences, intervals and verdicts (a star where a run of
    the pair has not beaten the untrained network)."""
    rows, seeds = [], set()
    for base, anchored in PAIRS:
        for eta in KEY_RATES:
            a, b = d.find(anchored, eta), d.find(base, eta)
            row = {"base loss": NAMES[base], "lr": f"{eta:g}"}
            if a is None or b is None:
                rows.append(row | {"kNN": "pending", "probe": "pending"})
                continue
            seeds.add(f"{len(a)}/{len(b)}")
            star = "" if d.trained(a) and d.trained(b) else "*"
            ds = [anchor[(anchored, base, eta, short)] for short in ACC]
            row |= {short: x.interval(unit="") for short, x in zip(ACC, ds)}
            row["verdicts"] = "/".join(x.verdict + star for x in ds)
            rows.append(row)
    lines = [
        "anchor (CLOA-) minus base loss, points: difference [95% interval];",
        f"verdicts kNN/probe (Holm over the table); seeds {', '.join(sorted(seeds))}",
        R.format_table(rows),
    ]
    if any("*" in v for row in rows for v in row.values()):
        lines.append("* a run of the pair has not beaten the untrained network")
    return "\n".join(lines)


def attribution_groups(d: CloaData) -> dict[str, list[dict]] | None:
    """The anchor alone, CLOA-InfoNCE, InfoNCE (all at lr 1) and the re-estimated
    untrained network, or None while any is missing."""
    out = {
        "anchor alone": d.studies["cpu-study"].groups("anchor only").get("anchor_lr1"),
        "CLOA-InfoNCE": d.find("cloa", 1.0),
        "InfoNCE": d.find("infonce", 1.0),
        "BN re-est.": d.untrained_bn,
    }
    return out if all(out.values()) else None


def attribution_verdicts(d: CloaData) -> dict:
    """Where CLOA's gain comes from: the anchor alone against the re-estimated
    network and InfoNCE, CLOA-InfoNCE against the anchor alone; both accuracies,
    Holm over the six. ``{(a, b, short): Difference}``; empty while runs miss."""
    g = attribution_groups(d)
    if g is None:
        return {}
    pairs = (
        ("anchor alone", "BN re-est."),
        ("anchor alone", "InfoNCE"),
        ("CLOA-InfoNCE", "anchor alone"),
    )
    return verdicts(g, pairs, ACC)


def attribution_report(d: CloaData, verdicts: Mapping) -> str:
    """The anchor alone's accuracies and the table of :func:`attribution_verdicts`."""
    g = attribution_groups(d)
    if not verdicts or g is None:
        return "pending: the anchor-only runs (listed under Provenance)"
    lines = []
    for short, key in ACC.items():
        s = R.seed_summary(g["anchor alone"], key)
        lines.append(f"anchor alone, {short}: {s.mean:.3f} [{s.low:.3f}, {s.high:.3f}]")
    lines.append(
        f"seeds: anchor alone {len(g['anchor alone'])}, CLOA-InfoNCE "
        f"{len(g['CLOA-InfoNCE'])}, InfoNCE {len(g['InfoNCE'])}, untrained (BN "
        f"re-est.) {len(g['BN re-est.'])}"
    )
    lines.append(difference_table(verdicts))
    return "\n".join(lines)


# ------------------------------------------- the paper's protocol at this scale
PAPER_PROTOCOL = G.TIERS["cpu-study"]["ch10"]["paper protocol"]
PAPER_RATES = tuple(sorted(PAPER_PROTOCOL["lrs"]))  # 0.01 and 1
PAPER_NAMES = {"infonce": "InfoNCE", "cloa": "CLOA-InfoNCE", "anchor": "anchor alone"}
# the section's questions, as (a, b) settings (key, eta) compared on both accuracies
PAPER_PAIRS = (
    (("infonce", 1.0), ("infonce", 0.01)),  # does the large rate cost accuracy?
    (("cloa", 1.0), ("infonce", 1.0)),  # the anchor's gain at the same rate
    (("cloa", 0.01), ("infonce", 0.01)),
    (("cloa", 1.0), ("infonce", 0.01)),  # the paper's Table 4 pairing of rates
    (("cloa", 1.0), ("anchor", 1.0)),  # what the contrastive term adds to the anchor
    (("anchor", 1.0), ("infonce", 1.0)),
)
# over-fusion, chapter 1's and the paper's diagnostics: InfoNCE at 1 against 0.01
FUSION = {
    "log10 raw var": log_var,
    "sphere var": VAR_SPHERE,
    "collinearity": COLLINEARITY,
}


def paper_groups(d: CloaData) -> dict[tuple[str, float], list[dict]]:
    """The "paper protocol" section's seed groups by ``(key, eta)`` (key: infonce,
    cloa or anchor), for the settings present."""
    found = d.studies["cpu-study"].groups("paper protocol")
    return {(d.loss_of(name), R.peak_lr(g[0])): g for name, g in found.items()}


def _paper_label(setting: tuple[str, float]) -> str:
    return f"{PAPER_NAMES[setting[0]]} lr {setting[1]:g}"


def defined(recs: Sequence[Mapping], key) -> tuple[list, list[str]]:
    """The records where ``key`` is a finite number, and the names of the others: a
    network that maps an image to the zero vector gives it no direction, so its
    measures on the sphere are NaN (``evaluate.heldout_metrics``)."""
    ok, undefined = [], []
    for r in recs:
        (ok if math.isfinite(R.lookup(r, key)) else undefined).append(r)
    return ok, [R.run_name(r) for r in undefined]


def paper_protocol(d: CloaData) -> dict:
    """The CLOA paper's protocol at this scale (weak augmentations, no weight decay,
    batch 128, 30 epochs), InfoNCE, CLOA-InfoNCE and the anchor term alone at
    :data:`PAPER_RATES`. Three tables of verdicts, each Holm-corrected over itself:
    ``"trains"`` (every setting against both untrained references, both
    accuracies), ``"pairs"`` (:data:`PAPER_PAIRS`, both accuracies) and ``"fusion"``
    (InfoNCE at 1 against 0.01 on :data:`FUSION`, no equivalence margin).

    Returns:
        ``{"groups", "trains", "pairs", "fusion"}``; the verdict tables are keyed
        ``(a, b, measure)`` as :func:`cl_lib.experiments.study.verdicts` returns them
        (in ``"trains"``, ``b`` is 0 for the network as initialised, 1 re-estimated).
    """
    g = paper_groups(d)
    refs = dict(enumerate(d.references))
    trains = verdicts({**g, **refs}, [(k, j) for k in g for j in refs], ACC)
    strong, mild = ("infonce", PAPER_RATES[-1]), ("infonce", PAPER_RATES[0])
    fusion = {}
    if g.get(strong) and g.get(mild):  # each measure over the seeds where it is defined
        table = {
            (strong, mild, m): tuple(
                R.seed_summary(defined(g[k], key)[0], key) for k in (strong, mild)
            )
            for m, key in FUSION.items()
        }
        fusion = R.compare_table(table, margin=None)
    return {
        "groups": g,
        "trains": trains,
        "pairs": verdicts(g, PAPER_PAIRS, ACC),
        "fusion": fusion,
    }


def paper_protocol_report(d: CloaData, found: Mapping) -> str:
    """The section's table (seed means, with the over-fusion diagnostics) and its
    three tables of differences; pending lines for what is missing."""
    g, rows, undefined = found["groups"], [], []
    for key in PAPER_NAMES:
        for eta in PAPER_RATES:
            recs = g.get((key, eta))
            row = {"setting": PAPER_NAMES[key], "lr": f"{eta:g}"}
            if not recs:
                rows.append(row | {"n": 0, "kNN": "pending"})
                continue
            row |= {"n": len(recs)}
            row |= {s: f"{R.seed_summary(recs, k).mean:.3f}" for s, k in ACC.items()}
            for name, k in FUSION.items():
                ok, dropped = defined(recs, k)
                row[name] = f"{R.seed_summary(ok, k).mean:.2f}" + "*" * bool(dropped)
                undefined += [(name, run) for run in dropped]
            if d.references and len(recs) > 1:
                n_refs = len(d.references)
                for side, column in ((R.HIGHER, "above"), (R.LOWER, "below")):
                    row[column] = beats_in(found["trains"], (key, eta), n_refs, side)
            rows.append(row)
    study = d.studies["cpu-study"]
    lines = [
        f"{study.hardware()}: the paper's protocol (seed means)",
        R.format_table(rows),
        *[
            f"* {m}: without {run}, which maps held-out images to 0"
            for m, run in undefined
        ],
        study.status("paper protocol", width=WIDTH),
    ]
    names = {k: _paper_label(k) for k in g}
    if found["pairs"]:
        lines.append("a - b, accuracy points (Holm over the table):")
        lines.append(difference_table(found["pairs"], names))
    if found["fusion"]:
        lines.append("over-fusion, a - b in the measure's units (Holm over the table):")
        lines.append(difference_table(found["fusion"], names, scale=1, digits=2))
    return "\n".join(lines)


def plot_paper_protocol(d: CloaData, found: Mapping, title: str):
    """Both accuracies of every paper-protocol setting: one dot per seed, the seed
    mean with its 95% interval, and the two untrained references as bands."""
    g = found["groups"]
    settings = [(k, eta) for k in PAPER_NAMES for eta in PAPER_RATES]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    refs = zip((d.untrained, d.untrained_bn), ("grey", "C9"), REFS.values())
    bands = [(recs, color, label) for recs, color, label in refs if recs]
    for ax, (short, key) in zip(axes, ACC.items()):
        for recs, color, label in bands:
            interval_band(ax, R.seed_summary(recs, key), color=color, alpha=0.3)
            ax.plot([], [], color=color, alpha=0.5, lw=8, label=label)  # legend entry
        for x, (loss, eta) in enumerate(settings):
            recs = g.get((loss, eta))
            if not recs:
                continue
            s = R.seed_summary(recs, key)
            color = f"C{list(PAPER_NAMES).index(loss)}"
            ax.plot([x] * len(recs), [R.lookup(r, key) for r in recs], ".", color=color)
            label = PAPER_NAMES[loss] if eta == PAPER_RATES[0] else None
            ax.errorbar(
                x + 0.2, s.mean, yerr=error_bar(s), fmt="o", color=color, label=label
            )
        ax.set_xticks(range(len(settings)), [f"{eta:g}" for _, eta in settings])
        ax.set(xlabel=r"learning rate $\eta$", ylabel=f"{short} accuracy")
        ax.grid(True, axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3)
    fig.suptitle(title)
    plt.tight_layout(rect=(0, 0.15, 1, 1))  # room for the legend below
    plt.show()


# ------------------------------------------------------- Section 6: the paper
def best(d: CloaData, loss: str, key: str):
    """The best seed mean over the rates present, its rate and its number of seeds
    (None if the loss has no run)."""
    cands = [
        (R.seed_summary(g, key).mean, rate(g), len(g))
        for n, g in d.groups.items()
        if d.loss_of(n) == loss
    ]
    return max(cands) if cands else None


def paper_table(d: CloaData) -> str:
    """The paper's Table 3 (quoted) beside our best seed means and the references."""
    rows = []
    for ref_name, ref in (("untrained", d.untrained), ("untrained_bn", d.untrained_bn)):
        if ref is None:
            continue
        rows.append(
            {"loss": REFS[ref_name], "paper 10%": "--", "50%": "--", "100%": "--"}
        )
        for short, key in ACC.items():
            rows[-1][f"ours {short}"] = f"{R.seed_summary(ref, key).mean:.3f}"
        rows[-1]["n"] = f"{len(ref)}"
    for loss, quoted in PAPER_TABLE3.items():
        row = {"loss": NAMES[loss], "paper 10%": f"{quoted[0]:.4f}"}
        row.update({"50%": f"{quoted[1]:.4f}", "100%": f"{quoted[2]:.4f}"})
        seeds = []
        for short, key in ACC.items():
            b = best(d, loss, key)
            row[f"ours {short}"] = (
                "pending" if b is None else f"{b[0]:.3f} (lr {b[1]:g})"
            )
            seeds.append("--" if b is None else f"{b[2]}")
        row["n"] = seeds[0] if len(set(seeds)) == 1 else "/".join(seeds)
        rows.append(row)
    return "\n".join(
        [
            "paper: MLP fine-tuning, ResNet-18, 100 epochs; ours: CPU study, frozen;",
            "n: seeds behind each of our means (kNN/probe where they differ)",
            R.format_table(rows),
        ]
    )


# ------------------------------------------------------- Section 7: quick profile
QUICK_NAMES = {"infonce": "InfoNCE", "cloa": "CLOA-InfoNCE"}


def quick_split(d: CloaData) -> tuple[list, list]:
    """The quick profile's sweep runs and its 30-epoch ("long_") runs."""
    long = [r for r in d.quick if R.run_name(r).startswith("long_")]
    return [r for r in d.quick if r not in long], long


def quick_report(d: CloaData) -> str:
    """How many quick files there are and the spread of their kNN accuracies."""
    quick, long = quick_split(d)
    knns = [R.lookup(r, "final.knn_acc") for r in quick]
    half = R.binomial_halfwidth(0.3, R.lookup(quick[0], "dataset.test_size"))
    return (
        f"quick profile: {len(quick)} sweep + {len(long)} 30-epoch files, each as"
        " planned,\nnone diverged; kNN "
        f"{min(knns):.2f}..{max(knns):.2f} (95% interval of one run: ± {half:.2f})"
    )


def quick_track(d: CloaData, loss: str, eta: float, key: str) -> tuple[list, list]:
    """Epochs and a tracked quantity of the 30-epoch quick run of a loss and rate."""
    long = quick_split(d)[1]
    (r,) = [r for r in R.select(long, loss=loss) if math.isclose(R.peak_lr(r), eta)]
    track = r["extra"]["tracking"]
    return [t["epoch"] for t in track], [t[key] for t in track]


def plot_quick_long(d: CloaData):
    """Effective rank and variance on the sphere along the 30-epoch quick runs."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.0))
    keys = ("effective_rank_features", "embedding_variance_sphere_features")
    for loss, ls in (("infonce", "-"), ("cloa", ":")):
        for eta, color in ((1e-3, "C0"), (1.0, "C3")):
            for ax, key in zip(axes, keys):
                ax.plot(
                    *quick_track(d, loss, eta, key),
                    color=color,
                    linestyle=ls,
                    marker="o",
                    label=f"{QUICK_NAMES[loss]}, lr {eta:g}",
                )
    axes[0].set(xlabel="epoch", ylabel="effective rank")
    axes[1].set(xlabel="epoch", ylabel="variance on the sphere")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=2)
    fig.suptitle(
        "Quick profile, 30 epochs (CPU, small convnet, 2,048 images): geometry"
    )
    plt.tight_layout(rect=(0, 0.14, 1, 1))  # room for the legend below
    plt.show()


def quick_rank_report(d: CloaData) -> str:
    """Each loss's rank at lr 1 and at lr 1e-3, first and last checkpoint."""
    lines = []
    for loss, name in QUICK_NAMES.items():
        _, hi = quick_track(d, loss, 1.0, "effective_rank_features")
        _, lo = quick_track(d, loss, 1e-3, "effective_rank_features")
        lines.append(
            f"{name:>12}: rank at lr 1 {hi[0]:.0f} -> {hi[-1]:.0f}, "
            f"at lr 1e-3 {lo[0]:.0f} -> {lo[-1]:.0f}"
        )
    return "\n".join(lines)


# ------------------------------------------------------- Section 8: the full grid
def full_grid_report(d: CloaData) -> str:
    """Print the full grid's accuracy table and draw its figures once runs exist;
    return how many runs are present and the command of a missing one."""
    study = d.studies["full"]
    groups = d.seed_groups("full")
    lines = []
    if groups:
        title = "Full grid (ResNet-18, CIFAR-10, 50 epochs, GPU)"
        base, base_bn = groups.get("untrained"), groups.get("untrained_bn")
        refs = [g for g in (base, base_bn) if g is not None]
        print(accuracy_table(d, groups, base, refs or None))
        if base is None:
            print("untrained ResNet-18: pending (the first rows of this table)")
        plot_accuracy(d, groups, base, title, rates=G.TIERS["full"]["ch10"]["lrs"])
        plot_along(d, groups, base, title, base_bn)
    lines.append(
        f"full-grid runs present: {study.present()} of "
        f"{len(study.plan)}; estimated time per run\nat the target speed: at most "
        f"{study.longest_run_s() / 60:.1f} min"
    )
    return "\n".join(lines + study.example(width=WIDTH, lead="for example:"))


# ------------------------------------------------------- Section 9: the answer
def answer_report(d: CloaData, top: Mapping, anchor: Mapping, rate_v: Mapping) -> str:
    """The headline numbers of the answer: InfoNCE at lr 1 against both references,
    every anchor comparison, and lr 1 minus 1e-3 per loss."""
    head = d.find("infonce", 1.0)
    lines = [
        (
            f"InfoNCE at lr 1 ({len(head)} seeds) vs untrained ({len(d.untrained)})"
            f" and untrained, BN re-est. ({len(d.untrained_bn)}):"
        )
    ]
    for what, key in (*ACC.items(), ("sphere var.", VAR_SPHERE)):
        s, s0, s1 = (R.seed_summary(g, key) for g in (head, *d.references))
        lines.append(f"  {what:<11} {mean_interval(s)}")
        lines.append(f"    vs untrained {mean_interval(s0)},")
        lines.append(f"       untrained, BN re-est. {mean_interval(s1)}")
    for (anchored, base, eta, short), x in anchor.items():
        a, b = d.find(anchored, eta), d.find(base, eta)
        note = "" if d.trained(a) and d.trained(b) else " (a run has not trained)"
        lines.append(
            f"{NAMES[anchored]} - {NAMES[base]}, lr {eta:g}, {short}: "
            f"{x.interval()}, p {x.p:.3f}, Holm {x.p_adj:.3f}: {x.verdict}{note}"
        )
    both = both_rates(d)
    for loss, title in NAMES.items():
        if loss not in both:
            lines.append(f"{title}, lr 1 vs 1e-3: pending")
            continue
        v = [
            f"{s} {top[(loss, 1e-3, s)].interval()} {top[(loss, 1e-3, s)].verdict}"
            for s in ACC
        ]
        v.append(rate_verdicts(both, rate_v, loss)[0])  # the raw variance (Fig. 2)
        lines.append(f"{title}, lr 1 minus 1e-3: " + "; ".join(v))
    return "\n".join(fill(line) for line in lines)
