"""Chapter 12's tables, figures and lists: the ImageNet-100 recipe and its stand-in.

Book layer. Chapter 12 (``book/12_imagenet100.ipynb``) keeps its claims and asserts;
this module keeps the plumbing that prints them: the recipe and the settings as
tables, the CPU study's seed summaries, its verdict tables (the book's rule,
:func:`results.compare_table`) and its figure, the full grid's tables and figures
(drawn once its files exist). Everything reads a
:class:`~cl_lib.experiments.study.Study` or the seed groups and
:class:`~cl_lib.experiments.results.SeedSummary` objects built from one; the runs
present, seed summaries, commands, pending runs and provenance are
:mod:`cl_lib.experiments.study`'s.

Generic helpers (not specific to Chapter 12): :func:`say`, :func:`plot_groups`,
:func:`pair_table`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from cl_lib.data import imagenet100_classes
from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R
from cl_lib.experiments.study import (
    READOUTS,
    Study,
    error_bar,
    interval_band,
    seed_stats,
)

__all__ = [
    "CAMPAIGN",
    "DATA_LABEL",
    "METRICS",
    "NUM_CLASSES",
    "TIERS",
    "TIER_LABEL",
    "WIDTH",
    "answer",
    "data_and_model",
    "full_grid_report",
    "pair_table",
    "plot_groups",
    "ratio_table",
    "recipes",
    "reference_table",
    "reference_verdicts",
    "say",
    "setting_ratios",
    "settings",
    "settings_table",
    "summary_table",
]

WIDTH = 80  # printed lines fit the page
TIERS = ("quick", "cpu-study", "cpu-long", "full")
METRICS = READOUTS  # the two read-outs, in the order printed
NUM_CLASSES = {"imagenette-96": 10, "imagenet100": len(imagenet100_classes())}
DATA_LABEL = {"imagenette-96": "Imagenette", "imagenet100": "ImageNet-100"}
# the four settings of the chapter (Section 1's table): label, tier, planned run
SETTINGS = (
    ("smoke test", "quick", "imagenette_simclr"),
    ("CPU study", "cpu-study", "imagenette_simclr"),
    ("full", "full", "imagenette_simclr"),
    ("full", "full", "in100_resnet18_simclr"),
    ("full", "full", "in100_resnet50_simclr"),
)
# each tier in the chapter's words
TIER_LABEL = {
    "quick": "smoke-test",
    "cpu-study": "CPU-study",
    "cpu-long": "long-CPU-tier",
    "full": "full-grid",
}
# the command that makes every pending CPU-study run of the chapter, in the background
CAMPAIGN = (
    "python -m cl_lib.campaign run --tier cpu-study --chapters ch12 --device cpu "
    "--bench-budget-s 0 --budget-s 5400 --out campaign-ch12 --into-book"
)


# ------------------------------------------------------------------------ printing
def say(text: str, width: int = WIDTH) -> None:
    """Print a sentence wrapped to the page width."""
    print(textwrap.fill(text, width))


# ------------------------------------------------------------------- the recipe
def recipes() -> str:
    """The two optimisation recipes (the trainer's defaults, "ours", and the DHEL/KCL
    authors' LARS setting) and the two DHEL variants, one line each."""
    from cl_lib.train import DEFAULT_LR, TrainConfig

    ours, authors = TrainConfig(), G.RECIPES["authors"]
    return "\n".join(
        [
            (
                f"recipe 'ours':    SGD, momentum {ours.momentum}, weight decay "
                f"{ours.weight_decay:g}, lr {DEFAULT_LR['sgd']} per 256 images"
            ),
            (
                f"recipe 'authors': {authors['optimizer'].upper()}, weight decay "
                f"{authors['weight_decay']:g}, lr {authors['lr']} per 256 images"
            ),
            f"DHEL here:        {G.LOSSES['dhel']}",
            f"DHEL, authors':   {G.LOSSES['dhel2v']}",
        ]
    )


def settings(studies: Mapping[str, Study]) -> list[tuple[str, G.PlannedRun]]:
    """The chapter's settings as ``(label, planned run)``, the SimCLR run of each."""
    return [(label, studies[tier].run(name)) for label, tier, name in SETTINGS]


def _setting_row(label: str, run: G.PlannedRun) -> dict:
    a = run.args
    data = a["dataset"]
    train = a.get("subset") or G.DATASET_TRAIN_SIZE[data]
    return {
        "setting": label,
        "data": DATA_LABEL[data],
        "classes": NUM_CLASSES[data],
        "train": f"{train:,}",
        "test": f"{a['test_subset']:,}" if a.get("test_subset") else "all",
        "px": G.image_side(a),
        "encoder": a["arch"],
        "epochs": a["epochs"],
        "batch": a["batch_size"],
    }


def settings_table(rows: Sequence[tuple[str, G.PlannedRun]]) -> str:
    """Data, classes, training and test images, pixels, encoder, epochs and batch of
    each ``(label, planned run)``: the sizes straight from the plan."""
    return R.format_table([_setting_row(label, run) for label, run in rows])


def setting_ratios(big: G.PlannedRun, small: G.PlannedRun) -> dict[str, tuple]:
    """``{quantity: (big, small, big / small)}`` for the classes, training images,
    pixels per image and epochs of two planned runs."""

    def sizes(run):
        a = run.args
        return {
            "classes": NUM_CLASSES[a["dataset"]],
            "training images": a.get("subset") or G.DATASET_TRAIN_SIZE[a["dataset"]],
            "pixels per image": G.image_side(a) ** 2,
            "epochs": a["epochs"],
        }

    b, s = sizes(big), sizes(small)
    return {k: (b[k], s[k], b[k] / s[k]) for k in b}


def ratio_table(big: G.PlannedRun, small: G.PlannedRun, num_params: int) -> str:
    """ImageNet-100 (``big``) beside the CPU study (``small``): each size and the
    ratio, then the encoders (``num_params``: the small network's parameters)."""
    lines = [f"{'':<17}{'ImageNet-100':>14}{'CPU study':>12}{'ratio':>9}"]
    for key, (b, s, ratio) in setting_ratios(big, small).items():
        lines.append(f"{key:<17}{b:>14,}{s:>12,}{ratio:>8.1f}x")
    lines.append(
        f"{'encoder':<17}{'ResNet-18/50':>14}{'small_cnn':>12}"
        f"   ({num_params:,} parameters)"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------ seed summaries
def data_and_model(record: Mapping) -> str:
    """Image side, training and test images, encoder, width and parameters of a run:
    two lines."""
    d = record["dataset"]
    return (
        f"Imagenette {d['image_shape'][1]} px: {d['train_size']:,} training / "
        f"{d['test_size']:,} test images,\n"
        f"{record['config']['arch']} width {record['config']['width']} "
        f"({record['model']['num_params']:,} parameters)"
    )


def summary_table(
    groups: Mapping,
    stats: Mapping,
    labels: Mapping[str, str],
    base: str,
    references: Sequence[str] = (),
) -> str:
    """One row per group and read-out: mean +- sd (seeds), the 95% interval and the
    gap to ``base`` in points ("--" for the references); "pending" where no file."""
    rows = []
    for g in labels:
        for m in METRICS:
            row = {"run": labels[g], "metric": m, "mean +- sd (seeds)": "pending"}
            if g in groups:
                s, b = stats[(g, m)], stats[(base, m)]
                gap = "--" if g in references else f"{100 * (s.mean - b.mean):+.1f}"
                row.update(
                    {
                        "mean +- sd (seeds)": str(s),
                        "95% interval": (
                            f"[{s.low:.3f}, {s.high:.3f}]" if s.n > 1 else "one seed"
                        ),
                        "gap (points)": gap,
                    }
                )
            rows.append(row)
    return R.format_table(rows, list(max(rows, key=len)))


# ------------------------------------------------------------------------ verdicts
def pair_table(stats: Mapping, a: str, b: str) -> dict:
    """Group ``a`` against group ``b`` on both read-outs: a table of its own
    (:func:`results.compare_table`), read-outs missing on either side left out."""
    return R.compare_table(
        {
            m: (stats[(a, m)], stats[(b, m)])
            for m in METRICS
            if (a, m) in stats and (b, m) in stats
        }
    )


def reference_verdicts(
    stats: Mapping, losses: Iterable[str], references: Iterable[str]
) -> dict:
    """Every loss against every reference on both read-outs, one table (Holm over
    all of it): ``{(loss, metric, reference): Difference}``; absent groups left out."""
    losses, references = list(losses), list(references)
    return R.compare_table(
        {
            (g, m, ref): (stats[(g, m)], stats[(ref, m)])
            for g in losses
            for m in METRICS
            for ref in references
            if (g, m) in stats and (ref, m) in stats
        }
    )


def reference_table(
    verdicts: Mapping, stats: Mapping, labels: Mapping, references: Mapping, seeds: int
) -> str:
    """:func:`reference_verdicts` as a table: a row per loss and read-out, a column
    per reference with the difference in points, its 95% interval and the verdict."""
    rows = []
    for g in dict.fromkeys(k[0] for k in verdicts):
        for m in METRICS:
            row = {
                "loss": labels[g],
                "metric": m,
                "seeds": f"{stats[(g, m)].n}/{seeds}",
            }
            for ref, label in references.items():
                if (g, m, ref) in verdicts:
                    d = verdicts[(g, m, ref)]
                    row[f"vs {label}"] = f"{d.interval(unit='')} {d.verdict}"
            rows.append(row)
    return R.format_table(rows)


def answer(
    groups: Mapping,
    stats: Mapping,
    labels: Mapping[str, str],
    verdicts: Mapping,
    references: Sequence[str],
    seeds: int,
    chance: float,
) -> str:
    """The CPU study in a few lines: both references' accuracies, each loss minus
    the network as initialised (``references[0]``) with its verdict from
    :func:`reference_verdicts`, and the two losses against each other (a table of
    its own); "pending" where files are missing."""
    base, base_bn = references
    first = f"untrained network: kNN {stats[(base, 'kNN')]}, "
    lines = [first + f"probe {stats[(base, 'probe')]} (chance {chance:.1f})"]
    if base_bn in groups:
        lines.append(
            f"untrained, BN re-estimated: kNN {stats[(base_bn, 'kNN')]}, "
            f"probe {stats[(base_bn, 'probe')]}"
        )
    trained = [g for g in labels if g not in references]
    for g in trained:
        if g not in groups:
            lines.append(f"{labels[g]}: pending (no CPU-study results yet)")
            continue
        parts = [
            f"{m} minus untrained {verdicts[(g, m, base)].interval()} "
            f"{verdicts[(g, m, base)].verdict}"
            for m in METRICS
        ]
        head = f"{labels[g]} ({len(groups[g])} of {seeds} seeds): "
        lines.append(textwrap.fill(head + "; ".join(parts), WIDTH))
    pair = " minus ".join(labels[g] for g in trained)
    if all(g in groups for g in trained):
        for m, d in pair_table(stats, *trained).items():
            lines.append(f"{pair}, {m}: {d.interval()}: {d.verdict}")
    else:
        lines.append(f"{' vs '.join(labels[g] for g in trained)}: pending")
    return "\n".join(lines)


# ------------------------------------------------------------------------ figures
def _panel(ax, groups, stats, labels, m, chance, top, base):
    """One read-out: the base's interval as a band, per-seed dots, mean +- 95%."""
    if base in groups:  # one seed: no interval
        style = {"color": "0.85", "label": "untrained, 95% interval"}
        interval_band(ax, stats[(base, m)], **style)
    for i, g in enumerate(labels):
        if g not in groups:
            ax.text(i, 0.5 * (chance + top), "pending", ha="center", va="center")
            continue
        seeds = [R.lookup(r, METRICS[m]) for r in groups[g]]
        s = stats[(g, m)]
        ax.plot([i - 0.12] * len(seeds), seeds, "o", color="0.45", ms=4)
        ax.errorbar(i + 0.08, s.mean, yerr=error_bar(s), fmt="s", color="C0", capsize=5)
    ax.axhline(chance, color="k", lw=0.8, ls="--", label="chance")
    ax.set_ylim(0, min(1, top + 0.15))
    ticks = [
        f"{labels[g]}\n({len(groups[g])} seeds)" if g in groups else labels[g]
        for g in labels
    ]
    ax.set_xticks(np.arange(len(labels)), ticks, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_title(f"{m} accuracy")
    ax.grid(axis="y", alpha=0.3)


def plot_groups(groups, stats, labels, chance, title, base=None):
    """Per-seed dots and mean +- 95% interval per group, one panel per read-out; the
    interval of the group ``base`` (the untrained network) as a grey band, chance as
    a dashed line, groups of ``labels`` with no file marked "pending".

    Returns the figure (shown by the caller)."""
    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 5.4), sharey=True)
    runs = [r for group in groups.values() for r in group]
    top = max(R.lookup(r, key) for r in runs for key in METRICS.values())
    for ax, m in zip(axes, METRICS):
        _panel(ax, groups, stats, labels, m, chance, top, base)
    axes[0].set_ylabel("test accuracy")
    fig.legend(*axes[-1].get_legend_handles_labels(), loc="lower center", ncol=2)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend below
    return fig


# ----------------------------------------------------------------------- full grid
def _full_table(study: Study, groups, stats, data: str, arch: str) -> None:
    """Print and plot one data set and encoder of the full grid, if it has files."""
    names = [
        g
        for g in groups
        if (study.run(g).args["dataset"], study.run(g).args["arch"]) == (data, arch)
    ]
    if not names:
        return
    prefix = "imagenette_" if data == "imagenette-96" else f"in100_{arch}_"
    labels = {g: g.removeprefix(prefix) for g in names}
    base = prefix + "untrained"  # the same encoder, untrained
    hardware = sorted(
        {
            str(R.lookup(r, "hardware.gpu", default=None) or "CPU")
            for g in names
            for r in groups[g]
        }
    )
    rows = [
        {"run": labels[g], "seeds": len(groups[g])}
        | {m: str(stats[(g, m)]) for m in METRICS}
        | {
            f"{m} 95%": f"[{stats[(g, m)].low:.3f}, {stats[(g, m)].high:.3f}]"
            for m in METRICS
        }
        for g in names
    ]
    print(f"\n{DATA_LABEL[data]}, {arch}:")
    print(R.format_table(rows))
    if base not in groups:
        print(f"{base}: pending (the untrained row of this table)")
    plot_groups(
        groups,
        stats,
        labels,
        1 / NUM_CLASSES[data],
        f"Full grid ({', '.join(hardware)}): {DATA_LABEL[data]}, "
        f"{G.DATASET_IMAGE_SIDE[data]} px, {arch}",
        base=base,
    )
    plt.show()


def full_grid_report(study: Study) -> None:
    """The full grid as it stands: diverged runs listed, then per data set and
    encoder a table of every seed group present and its figure."""
    diverged = [R.run_name(r) for r in study.records if r.get("diverged")]
    if diverged:  # no final metrics: listed, left out of the table
        print("diverged (non-finite loss):", ", ".join(diverged))
    groups = study.groups()  # plan order: the untrained rows first
    stats = seed_stats(groups)
    for data in NUM_CLASSES:
        for arch in ("resnet18", "resnet50"):  # one table per data set and encoder
            _full_table(study, groups, stats, data, arch)
