"""Chapter 11's report: the tables, figures and listings of the CIFAR benchmark.

The chapter (``book/11_cifar_benchmark.ipynb``) asks how SimCLR, DCL, DHEL, KCL and
CLOA compare on real images; this module draws what it shows from the results files,
through :class:`cl_lib.experiments.study.Study`, so the notebook keeps only its
questions, short calls and the asserts that check its text:

- the chapter's words for what was trained (:data:`LABEL`, :data:`SHORT`) and its
  headline table (:func:`headline`, :func:`headline_table`);
- words for verdicts between seed groups (:func:`verdict_words`; the tables
  themselves: :func:`study.verdicts`, :func:`study.difference_table`);
- the figures: training views (:func:`plot_views`), the recipe search
  (:func:`plot_search`), seed tracks (:func:`plot_seed_tracks`), retrieval
  (:func:`show_retrieval`), the headline (:func:`plot_headline`), longer training
  (:func:`plot_length`), the sweeps (:func:`plot_sweeps`), spectra
  (:func:`plot_spectra`) and geometry along training (:func:`plot_tracking`);
- the sweeps' points and tables, the geometry table, many-class tables, the full
  grid's status and redraw. Seed summaries, means along training, the pending runs
  and the provenance listing are :mod:`cl_lib.experiments.study`'s.

Every function reads records; none trains. Figures are drawn with matplotlib and shown
(``plt.show()``) where the chapter shows them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from cl_lib import stats as S
from cl_lib.experiments import grid as G
from cl_lib.experiments import results as R
from cl_lib.experiments.study import (
    KNN,
    PROBE,
    READOUTS,
    Study,
    along,
    difference_table,
    error_bar,
    interval,
    interval_band,
    mean_interval,
    points,
    summary,
    verdicts,
    word,
)

CHAPTER = "ch11"
TIERS = ("cpu-study", "cpu-long", "quick", "full")
LABEL = {  # the chapter's words for what was trained
    "untrained": "untrained network",
    "untrained_bn": "untrained, BN re-est.",
    "simclr": "SimCLR",
    "dcl": "DCL",
    "dhel": "DHEL",
    "dhel2v": "DHEL (authors')",
    "kcl": "KCL (Gaussian)",
    "cloa": "CLOA (10% labels)",
    "supcon": "SupCon (all labels)",
}
SHORT = dict(  # the same, short enough for a legend or a table's first column
    LABEL,
    untrained="untrained",
    dhel2v="DHEL (auth.)",
    kcl="KCL",
    cloa="CLOA",
    supcon="SupCon",
)
REFS = ("untrained", "untrained_bn")  # the network with random weights, two forms
SELF_SUPERVISED = ("simclr", "dcl", "dhel", "dhel2v", "kcl")
HEADLINE = REFS + SELF_SUPERVISED + ("cloa", "supcon")
READ = READOUTS  # the two read-outs of every table
SWEEPS = {  # section: (x field, axis label)
    "batch": ("config.batch_size", "batch size $B$ (12 epochs)"),
    "batch steps": ("config.batch_size", "batch size $B$ (468 steps)"),
    "tau": ("config.loss_kwargs.tau", "temperature $\\tau$"),
}
SWEEP_LOSSES = {"simclr": "SimCLR", "dhel": "DHEL"}
GEOM = {  # geometry column: metric
    "rank h": "metrics.effective_rank_features",
    "rank z": "metrics.effective_rank",
    "align": "metrics.alignment",
    "unif": "metrics.uniformity",
    "W-unif": "metrics.wasserstein_uniformity",
}
DIGITS = {"rank h": 1, "rank z": 1, "align": 2, "unif": 2, "W-unif": 3}
OUR_RECIPE = {  # the CPU study's recipe (Section 1's table), field: value
    "config.arch": "small_cnn",
    "config.width": 16,
    "dataset.train_size": 10_000,
    "dataset.test_size": 10_000,
    "config.optimizer": "sgd",
    "config.momentum": 0.9,
    "config.weight_decay": 5e-4,
    "config.warmup_epochs": 0.0,
    "config.knn_k": 200,
}
SEARCH_GOAL = 0.65  # the kNN accuracy the recipe search aimed at


# ------------------------------------------------------------------ studies, tables
def studies(root: str = "results", tiers: Sequence[str] = TIERS) -> dict[str, Study]:
    """The chapter's :class:`Study` of each tier, ``{tier: study}``."""
    return {tier: Study(CHAPTER, tier, root=root) for tier in tiers}


def headline(study: Study):
    """Seed groups by loss key, and ``{key: (kNN summary, probe summary)}``."""
    head = study.by_key("baseline", "losses", "supervised", "more losses")
    means = {
        k: (summary(head[k], KNN), summary(head[k], PROBE))
        for k in HEADLINE
        if head.get(k)
    }
    return head, means


def headline_table(means: Mapping) -> str:
    """The headline table: kNN and probe of every loss (``pending`` when absent) and
    their gains over the untrained network in points."""
    base = means.get("untrained")
    rows = []
    for k in HEADLINE:
        if k not in means:
            rows.append({"loss": LABEL[k], "kNN": "pending"})
            continue
        knn, probe = means[k]
        gain = not k.startswith("untrained") and base is not None
        rows.append(
            {
                "loss": LABEL[k],
                "kNN": str(knn),
                "linear probe": str(probe),
                "+kNN": f"{points(knn, base[0]):+.1f}" if gain else "--",
                "+probe": f"{points(probe, base[1]):+.1f}" if gain else "--",
            }
        )
    return R.format_table(rows, ["loss", "kNN", "linear probe", "+kNN", "+probe"])


def verdict_words(found: Mapping, keys: Sequence[str], cols: Sequence[str]) -> str:
    """A table of verdict words, one row per key, one column per read-out
    (``found``: ``{(key, column): Difference}``)."""
    rows = [{"loss": SHORT[k]} | {c: word(found[(k, c)]) for c in cols} for k in keys]
    return R.format_table(rows)


def seed_values(groups: Mapping, keys: Iterable[str], metric: str = KNN) -> dict:
    """``{key: [value of each seed]}`` of the keys with a group present."""
    return {k: [R.lookup(r, metric) for r in groups[k]] for k in keys if groups.get(k)}


def gain_lines(values: Mapping[str, Sequence[float]], top_ref: float) -> str:
    """Each loss's seed accuracies and its worst seed's gain over ``top_ref``."""
    return "\n".join(
        f"{SHORT[k]:>14}: kNN {', '.join(f'{a:.3f}' for a in accs)} "
        f"(+{100 * (min(accs) - top_ref):.1f} points over the better untrained "
        "reference)"
        for k, accs in values.items()
    )


def recipe_mismatches(record: Mapping, recipe: Mapping = OUR_RECIPE) -> dict:
    """The fields of a record that differ from a recipe, ``{field: value}``."""
    return {
        k: R.lookup(record, k) for k, v in recipe.items() if R.lookup(record, k) != v
    }


def seed_mean_lines(means: Mapping, keys: Iterable[str]) -> str:
    """The untrained network's kNN and, for each key present, its kNN with interval,
    gain over the untrained network and number of seeds."""
    base = means["untrained"][0]
    lines = [f"untrained network: kNN {mean_interval(base)}"]
    for k in [k for k in keys if k in means]:
        knn = means[k][0]
        lines.append(
            f"{LABEL[k]:>20}: kNN {mean_interval(knn)}, "
            f"{points(knn, base):+.1f} points, n={knn.n}"
        )
    return "\n".join(lines)


def difference_lines(found: Mapping, keys: Iterable[str], ref: str = "simclr") -> str:
    """Each key's difference with ``ref`` in both read-outs (:func:`verdicts`):
    interval, p alone, p after Holm and the verdict."""
    title = f"headline differences against {SHORT[ref]}"
    lines = [f"{title} (points, 95% interval; p alone, p after Holm):"]
    for k in keys:
        for r in READ:
            d = found[(k, ref, r)]
            lines.append(
                f"  {SHORT[k]:>12} - {SHORT[ref]}, {r:<5} {d.interval():<26} "
                f"p {d.p:.3f}, Holm {d.p_adj:.3f}: {word(d)}"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------ the data
def plot_views(classes: int = 6, seed: int = 0):
    """One CIFAR-10 training image of each of the first classes and two training
    views of it (:class:`cl_lib.augment.SimCLRAugment`), in a 3-row figure.

    Returns:
        ``(image, view 1, view 2)`` of the first class, or None (with a message)
        without the CIFAR-10 data.
    """
    if not G.dataset_available("cifar10"):
        print("the figure needs the CIFAR-10 data (CL_LIB_DATA; see the README)")
        return None
    import torch

    from cl_lib.augment import SimCLRAugment, to_float
    from cl_lib.data import load_dataset

    train_x, train_y, names = load_dataset("cifar10", "train")
    pick = torch.stack([torch.nonzero(train_y == c)[0, 0] for c in range(classes)])
    views = SimCLRAugment(mean=None, std=None)  # the training views, in [0, 1]
    gen = torch.Generator().manual_seed(seed)
    rows = {
        "image": to_float(train_x[pick]),
        "view 1": views(train_x[pick], gen),
        "view 2": views(train_x[pick], gen),
    }
    _, axes = plt.subplots(3, classes, figsize=(7, 3.9))
    for i, (name, images) in enumerate(rows.items()):
        for j, img in enumerate(images):
            axes[i, j].imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(names[int(train_y[pick[j]])], fontsize=10)
        axes[i, 0].set_ylabel(name, fontsize=10)
    plt.subplots_adjust(wspace=0.05, hspace=0.05)
    plt.show()
    return tuple(images[0] for images in rows.values())


# ------------------------------------------------------------------ the recipe search
def search_runs(root: str = "results") -> list[dict]:
    """The recipe search's runs (``<root>/cpu-long/search``), by width, epochs and
    optimiser."""
    return sorted(
        R.load_results(f"{root}/cpu-long/search"),
        key=lambda r: (
            r["config"]["width"],
            r["config"]["epochs"],
            r["config"]["optimizer"],
        ),
    )


def search_label(r: Mapping) -> str:
    """``"small_resnet 16, 20 ep., sgd"``: a search run in a legend."""
    c = r["config"]
    return f"{c['arch']} {c['width']}, {c['epochs']} ep., {c['optimizer']}"


def last_tracked_knn(r: Mapping) -> float:
    """The last kNN accuracy tracked along training (before the final evaluation)."""
    return [h["knn_acc"] for h in r["history"] if "knn_acc" in h][-1]


def search_table(search: Sequence[Mapping]) -> str:
    """The recipe search, one row per run, with its title (or "pending")."""
    rows = [
        {
            "network": f"{r['config']['arch']}, width {r['config']['width']}",
            "params": f"{r['model']['num_params'] / 1e6:.2f} M",
            "optimiser": f"{r['config']['optimizer']}, lr {r['peak_lr']:g}",
            "epochs": r["config"]["epochs"],
            "kNN": f"{R.lookup(r, KNN):.3f}",
            "probe": f"{R.lookup(r, PROBE):.3f}",
            "wall": f"{r['wall_time_s'] / 60:.0f} min",
        }
        for r in search
    ]
    title = "recipe search: SimCLR on all of CIFAR-10, one run each, one thread"
    return title + "\n" + (R.format_table(rows) if rows else "pending: no search run")


def search_best(best: Mapping) -> str:
    """The best search run's kNN accuracy, and whether it reached the goal."""
    goal = "reached" if R.lookup(best, KNN) >= SEARCH_GOAL else "not reached"
    return (
        f"best kNN: {R.lookup(best, KNN):.3f} ({search_label(best)});"
        f" the goal of {SEARCH_GOAL}: {goal}"
    )


def plot_search(search: Sequence[Mapping], refs: Mapping) -> None:
    """kNN accuracy along each search run (every 5 epochs and the final one), and
    the long tier's untrained references (``refs``: :func:`headline`'s summaries)."""
    _, ax = plt.subplots(figsize=(7, 5.4))
    for i, r in enumerate(search):  # kNN every 5 epochs, and the final evaluation
        seen = [h for h in r["history"] if "knn_acc" in h]
        epochs = [h["epoch"] for h in seen] + [r["config"]["epochs"]]
        acc = [h["knn_acc"] for h in seen] + [R.lookup(r, KNN)]
        ax.plot(epochs, acc, "o-", ms=4, color=f"C{i}", label=search_label(r))
    for ref, style in (("untrained", ":"), ("untrained_bn", "--")):  # random weights
        if ref in refs:
            u = refs[ref][0]
            ax.axhline(
                u.mean, color="grey", ls=style, label=f"{SHORT[ref]} (tier's net)"
            )
    ax.set(xlabel="epoch", ylabel="kNN accuracy (10k test)", ylim=(0.3, None))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below the axes
    plt.tight_layout()
    plt.show()


# ------------------------------------------------------------------ along training
def plot_seed_tracks(
    head: Mapping,
    refs: Mapping,
    keys: Sequence[str] = ("simclr", "dhel2v", "kcl", "cloa", "dcl", "dhel", "supcon"),
) -> dict:
    """kNN accuracy along training, each seed thin and the seed mean thick, against
    the untrained references (``refs``: :func:`headline`'s summaries).

    Returns:
        ``{key: (epochs, mean kNN over the seeds)}`` of the losses drawn.
    """
    _, ax = plt.subplots(figsize=(7, 4.6))
    drawn = {}
    for i, k in enumerate(keys):
        tracks = [  # runs tracked along training (not the supervised reference)
            r["extra"]["tracking"]
            for r in head.get(k, [])
            if r.get("extra", {}).get("tracking")
        ]
        if not tracks:
            continue
        epochs = [t["epoch"] for t in tracks[0]]
        seeds = np.array([[t["knn_acc"] for t in tr] for tr in tracks])
        for row in seeds:  # each seed, thin
            ax.plot(epochs, row, color=f"C{i}", lw=0.8, alpha=0.5)
        drawn[k] = (epochs, seeds.mean(0))
        ax.plot(
            epochs,
            seeds.mean(0),
            "o-",
            color=f"C{i}",
            label=f"{SHORT[k]} ({len(seeds)})",
        )
    for ref, style in (("untrained", ":"), ("untrained_bn", "--")):
        ax.axhline(
            refs[ref][0].mean,
            color="grey",
            ls=style,
            label=SHORT[ref] if ref == "untrained" else "BN re-est.",
        )
    ax.set(xlabel="epoch", ylabel="kNN accuracy (10k test)", xticks=[0, 5, 10, 15, 20])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    plt.tight_layout()
    plt.show()
    return drawn


def plot_length(
    head: Mapping, long: Mapping, base, keys: Sequence[str], title: str
) -> None:
    """kNN accuracy along training (seed means) of the headline losses (``keys``)
    and of the longer SimCLR run (``long``: groups by key), against the untrained
    network's 95% interval (``base``)."""
    _, ax = plt.subplots(figsize=(9, 5.6))
    ax.axhspan(
        base.low, base.high, color="grey", alpha=0.3, label="untrained network (95%)"
    )
    for k in keys:
        ep, acc = along(head[k])
        ax.plot(ep, acc, "o-", lw=1, ms=4, label=f"{LABEL[k]}, 12 epochs")
    if long.get("simclr"):
        ep, acc = along(long["simclr"])
        n_ep = long["simclr"][0]["config"]["epochs"]
        ax.plot(ep, acc, "k*-", lw=2, ms=9, label=f"SimCLR, {n_ep} epochs")
    ax.set(
        xlabel="epoch",
        ylabel="kNN accuracy (10k test images)",
        title=title,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)  # below
    plt.tight_layout()
    plt.show()


def length_report(long_recs: Sequence[Mapping], s12, base, base_bn) -> str:
    """The longer SimCLR run against the 12-epoch one: each one's kNN, its gains
    over both untrained references, their difference and the longer run's track."""
    s_long, n_long = summary(long_recs), long_recs[0]["config"]["epochs"]
    lines = [
        f"SimCLR {n_ep} epochs: kNN {mean_interval(s)}, n={s.n}; over "
        f"untrained {points(s, base):+.1f} points,\n  over BN re-est. "
        f"{points(s, base_bn):+.1f} points"
        for n_ep, s in ((12, s12), (n_long, s_long))
    ]
    lines.append(f"{n_long} against 12 epochs: {R.difference(s_long, s12).interval()}")
    ep, acc = along(long_recs)
    track = ", ".join(f"epoch {e} {a:.3f}" for e, a in zip(ep, acc))
    return "\n".join(lines + ["along the longer run: " + track])


# ------------------------------------------------------------------ retrieval
def with_retrieval(recs: Sequence[Mapping] | None):
    """The first record of a group that stored a retrieval snapshot, or None."""
    return next((r for r in recs or [] if "retrieval" in r.get("extra", {})), None)


def show_retrieval(records: Mapping[str, Mapping]) -> dict[str, float]:
    """One row per query (a test image of each class); for each encoder its nearest
    training images, framed green when of the query's class, red when not.

    Args:
        records: key -> a record with ``extra.retrieval`` (the same queries).

    Returns:
        ``{key: share of the neighbours that are of the query's class}``.
    """
    shown = {k: R.retrieval_images(r) for k, r in records.items()}
    first = next(iter(shown.values()))
    q, k = len(first["query_index"]), len(first["neighbour_index"][0])
    _, axes = plt.subplots(q, 1 + len(shown) * k, figsize=(7, 0.64 * q))
    for i in range(q):
        cells = [(first["query"][i], None)] + [
            (s["neighbours"][i][j], s["neighbour_label"][i][j] == s["query_label"][i])
            for s in shown.values()
            for j in range(k)
        ]
        for ax, (img, same) in zip(axes[i], cells):
            ax.imshow(img.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "black" if same is None else "green" if same else "red"
            for side in ax.spines.values():
                side.set_color(colour)
                side.set_linewidth(2)
        name = first["classes"][first["query_label"][i]]
        axes[i][0].set_ylabel(name, fontsize=10, rotation=0, ha="right", va="center")
    axes[0][0].set_title("query", fontsize=10)
    for j, key in enumerate(shown):
        axes[0][1 + j * k + k // 2].set_title(SHORT[key], fontsize=10)
    plt.subplots_adjust(wspace=0.05, hspace=0.05)
    plt.show()
    return {
        key: float(
            np.mean(
                [
                    [n == ql for n in row]
                    for row, ql in zip(s["neighbour_label"], s["query_label"])
                ]
            )
        )
        for key, s in shown.items()
    }


def show_best_retrieval(head: Mapping, means: Mapping):
    """:func:`show_retrieval` for the network with random weights (BatchNorm
    re-estimated), the best self-supervised loss (SimCLR, DHEL (authors'), KCL) and
    CLOA, and a line of their shares; None (and "pending") without the runs or the
    data."""
    ssl = [k for k in ("simclr", "dhel2v", "kcl") if means.get(k)]
    best = max(ssl, key=lambda k: means[k][0].mean, default=None)
    shown = [k for k in ("untrained_bn", best, "cloa") if k and head.get(k)]
    pair = {k: with_retrieval(head[k]) for k in shown}
    if len(pair) < 2 or not all(pair.values()) or not G.dataset_available("cifar10"):
        print("pending: the figure needs the long tier's untrained and trained runs")
        return None
    share = show_retrieval(pair)
    print(
        "neighbours of the query's class: "
        + ", ".join(f"{SHORT[k]} {v:.2f}" for k, v in share.items())
    )
    return share


# ------------------------------------------------------------------ the headline
def plot_headline(means: Mapping, title: str) -> None:
    """kNN and probe accuracy of each loss with its 95% interval over seeds (a point
    alone: one seed), over the untrained network's intervals (shaded)."""
    keys = [k for k in HEADLINE if k in means]
    _, ax = plt.subplots(figsize=(9, 4.6))
    x = np.arange(len(keys))
    for i, (label, marker) in enumerate((("kNN", "o"), ("linear probe", "s"))):
        s = [means[k][i] for k in keys]
        ax.errorbar(  # one seed: the point alone, no interval
            x + (i - 0.5) * 0.2,
            [v.mean for v in s],
            yerr=[error_bar(v) for v in s],
            fmt=marker,
            capsize=3,
            label=f"{label} (95% interval over seeds)",
        )
        if "untrained" in means:
            interval_band(ax, means["untrained"][i], color=f"C{i}", alpha=0.15)
    ax.set_xticks(x)
    ax.set_xticklabels([SHORT[k] for k in keys], rotation=30, ha="right")
    ax.set(ylabel="test accuracy", title=title)
    top = max(
        means[k][i].high if means[k][i].n > 1 else means[k][i].mean
        for k in keys
        for i in (0, 1)
    )
    ax.set_ylim(top=top + 0.1)  # room for the legend above the points
    ax.legend(loc="upper left", ncol=2)
    plt.tight_layout()
    plt.show()


# ------------------------------------------------------------------ the sweeps
def present_groups(study: Study, section: str) -> list[tuple[G.PlannedRun, list]]:
    """``(planned run, seed group)`` of each setting of a section with a file present.

    Seed groups are formed over *all* the study's records, so a setting shared with
    another section (the main batch and temperature, the headline's extra seeds) has
    all its seeds."""
    records = R.by_seed_group(study.records)
    runs = study.sections.get(section, [])
    return [(run, records[run.name]) for run in runs if records.get(run.name)]


def sweep_points(study: Study, section: str) -> dict[str, list[tuple]]:
    """``{loss: [(x, summary, steps), ...]}`` over the runs of a sweep present, by x
    (every seed of a point: :func:`present_groups`)."""
    pts: dict[str, list[tuple]] = {}
    for run, recs in present_groups(study, section):
        x = R.lookup(recs[0], SWEEPS[section][0])
        steps = recs[0]["config"]["epochs"] * recs[0]["steps_per_epoch"]
        pts.setdefault(run.key, []).append((x, summary(recs), steps))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in pts.items()}


def drawable(pts: Mapping) -> bool:
    """Whether a sweep has two x values or more for some loss."""
    return any(len({p[0] for p in v}) >= 2 for v in pts.values())


def plot_sweeps(study: Study, title: str) -> list[str]:
    """kNN accuracy along each drawable sweep (log x), SimCLR solid, DHEL dashed;
    returns the sections drawn."""
    shown = [s for s in SWEEPS if drawable(sweep_points(study, s))]
    if not shown:
        return shown
    fig, axes = plt.subplots(
        1, len(shown), figsize=(3.0 * len(shown) + 0.6, 4.2), squeeze=False
    )
    for ax, section in zip(axes[0], shown):
        for k, pts in sweep_points(study, section).items():
            ax.errorbar(
                [p[0] for p in pts],
                [p[1].mean for p in pts],
                yerr=[error_bar(p[1]) for p in pts],
                marker="o",
                ls="-" if k == "simclr" else "--",
                capsize=3,
                label=SWEEP_LOSSES.get(k, k),
            )
        ax.set_xscale("log", base=2)
        ax.set(xlabel=SWEEPS[section][1], title=section)
    axes[0][0].set_ylabel("kNN accuracy")
    handles = axes[0][0].get_legend_handles_labels()
    fig.legend(*handles, loc="lower center", ncol=2)
    fig.suptitle(title)
    plt.tight_layout(rect=(0, 0.1, 1, 1))  # room for the legend below
    plt.show()
    return shown


def extremes(pts: Sequence[tuple]):
    """(spread in points, best against worst, x of the best, x of the worst) of one
    loss's points of a sweep; the comparison alone (one seed: no verdict)."""
    hi = max(pts, key=lambda p: p[1].mean)
    lo = min(pts, key=lambda p: p[1].mean)
    return points(hi[1], lo[1]), word(R.difference(hi[1], lo[1])), hi[0], lo[0]


def sweep_differences(pts: Mapping) -> dict:
    """DHEL against SimCLR at every x of a sweep: one table (Holm over it)."""
    simclr = {x: s for x, s, _ in pts.get("simclr", [])}
    return R.compare_table(
        {x: (s, simclr[x]) for x, s, _ in pts.get("dhel", []) if x in simclr}
    )


def sweep_extremes(study: Study, section: str) -> dict:
    """``{loss: extremes}`` of a sweep whose runs are all present ({} otherwise)."""
    runs = study.sections.get(section, [])
    if not runs or G.missing_runs(runs, study.records):
        return {}
    return {k: extremes(pts) for k, pts in sweep_points(study, section).items()}


def _sweep_rows(study: Study, section: str, pts: Mapping):
    """The rows of one sweep's table (the untrained references first) and its
    columns."""
    head = headline(study)[0]
    refs = {"untrained": "untrained", "untrained_bn": "BN re-est."}
    x_col = SWEEPS[section][0].split(".")[-1]
    col = {k: f"{SWEEP_LOSSES.get(k, k)} kNN" for k in pts}
    rows = {}
    for ref, name in refs.items():
        if head.get(ref):
            s = summary(head[ref])
            rows[name] = {x_col: name, "steps": 0} | {
                col[k]: mean_interval(s) for k in pts
            }
    diffs = sweep_differences(pts)
    for k, v in pts.items():
        for x, s, steps in v:
            row = rows.setdefault(x, {x_col: f"{x:g}", "steps": steps})
            row[col[k]] = mean_interval(s)
            if x in diffs:
                row["DHEL - SimCLR"] = f"{diffs[x].interval(unit='')}"
    order = [n for n in refs.values() if n in rows]
    order += sorted(x for x in rows if x not in order)
    columns = [x_col, "steps", *col.values()] + (["DHEL - SimCLR"] if diffs else [])
    return [rows[x] for x in order], columns


def sweep_tables(study: Study) -> str:
    """One table per drawable sweep, the untrained network's rows first (the same
    network for every loss, so the same value in each column), then each loss's
    spread and its best against its worst point."""
    out = []
    for section in SWEEPS:
        pts = sweep_points(study, section)
        if not drawable(pts):
            continue
        out += [f"{section}:", R.format_table(*_sweep_rows(study, section, pts))]
        for k, v in pts.items():
            spread, verdict, _, _ = extremes(v)
            out.append(
                f"  {SWEEP_LOSSES.get(k, k)}: spread {spread:.1f} "
                f"points; highest against lowest: {verdict}"
            )
    return "\n".join(out)


# ------------------------------------------------------------------ temperature, seeds
TAU_LOSSES = {  # the temperature study's three losses, with their table names
    "simclr": "SimCLR",
    "dhel": "DHEL 1 view",
    "dhel2v": "DHEL 2 views",
}


def tau_groups(study: Study) -> dict[str, dict[float, list]]:
    """``{loss: {tau: seed group}}`` of the "tau seeds" section's settings present
    (every seed of a setting: :func:`present_groups`)."""
    out: dict[str, dict[float, list]] = {}
    for run, recs in present_groups(study, "tau seeds"):
        tau = float(R.lookup(recs[0], "config.loss_kwargs.tau"))
        out.setdefault(run.key, {})[tau] = recs
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def tau_verdicts(groups: Mapping, metric: str = KNN) -> dict:
    """Two tables of differences at every temperature, each Holm-corrected:
    ``"vs SimCLR"`` (each DHEL against SimCLR) and ``"views"`` (DHEL's energy over
    both views against one view), ``{table: {(name, tau): Difference}}``."""
    simclr, one, two = (groups.get(k, {}) for k in TAU_LOSSES)
    vs = {}
    for key in ("dhel", "dhel2v"):
        for tau, recs in groups.get(key, {}).items():
            if tau in simclr:
                vs[(TAU_LOSSES[key], tau)] = (recs, simclr[tau])
    views = {("2 views - 1 view", t): (two[t], one[t]) for t in two if t in one}
    return {
        "vs SimCLR": R.compare_table(vs, key=metric),
        "views": R.compare_table(views, key=metric),
    }


def tau_advantage_change(
    groups: Mapping, key: str, low: float, high: float, metric: str = KNN
):
    """Chapter 4's prediction as one contrast: does ``key``'s advantage over SimCLR
    at the temperature ``low`` exceed its advantage at ``high``?
    ``(d(low) - d(high))`` with Welch's interval (:func:`cl_lib.stats.contrast`),
    or None when a group is absent."""
    simclr, loss = groups.get("simclr", {}), groups.get(key, {})
    if not all(t in g for t in (low, high) for g in (simclr, loss)):
        return None
    values = [summary(g[t], metric).values for t in (low, high) for g in (loss, simclr)]
    return S.contrast(values, [1, -1, -1, 1], margin=None)


def tau_prediction(groups: Mapping, low: float, high: float) -> dict:
    """Chapter 4's prediction in both read-outs, read as one table:
    ``{(key, read-out): Difference}`` of :func:`tau_advantage_change` for each DHEL,
    Holm-corrected over the table (``cl_lib.stats.decide_table``)."""
    raw = {}
    for read, metric in READ.items():
        for key in ("dhel", "dhel2v"):
            d = tau_advantage_change(groups, key, low, high, metric)
            if d is not None:
                raw[(key, read)] = d
    return S.decide_table(raw)


def tau_effect(groups: Mapping, low: float, high: float) -> dict:
    """Each loss at the temperature ``low`` against itself at ``high``, in both
    read-outs, one table: ``{(key, read-out): Difference}`` (Welch, Holm over the
    table; no equivalence margin: the question is whether tau moves the accuracy)."""
    return R.compare_table(
        {
            (key, read): (summary(by_tau[low], m), summary(by_tau[high], m))
            for read, m in READ.items()
            for key, by_tau in groups.items()
            if low in by_tau and high in by_tau
        },
        margin=None,
    )


def _tau_cell(s) -> str:
    """``"0.409 [0.325, 0.492] (3)"``: seed mean, 95% interval, seeds."""
    return f"{s.mean:.3f} {interval(s, one_seed='')}".rstrip() + f" ({s.n})"


def tau_report(study: Study, metric: str = KNN) -> dict:
    """Print the temperature study: each loss's seed mean at every temperature (with
    its seeds), the two tables of differences and chapter 4's prediction (DHEL's
    advantage over SimCLR at the lowest against the highest temperature, in both
    read-outs: :func:`tau_prediction`) and each loss's own change over that range
    (:func:`tau_effect`); returns ``{"groups", "verdicts", "change", "effect"}`` for
    the chapter's asserts (the last two keyed by ``(loss key, read-out)``)."""
    groups = tau_groups(study)
    taus = sorted({t for g in groups.values() for t in g})
    rows = []
    for tau in taus:
        row = {"tau": f"{tau:g}"}
        for key, name in TAU_LOSSES.items():
            recs = groups.get(key, {}).get(tau)
            row[name] = _tau_cell(summary(recs, metric)) if recs else "pending"
        rows.append(row)
    print(f"{metric.split('.')[-1]} by temperature (seeds in brackets):")
    print(R.format_table(rows, ["tau", *TAU_LOSSES.values()]))
    verdicts = tau_verdicts(groups, metric)
    for table, found in verdicts.items():
        print(f"{table} (Holm over the table):")
        for (name, tau), d in found.items():
            print(f"  tau {tau:<4g} {name:<17} {d.interval()}: {word(d)}")
    change, effect = {}, {}
    if taus:
        low, high = taus[0], taus[-1]
        change = tau_prediction(groups, low, high)
        effect = tau_effect(groups, low, high)
        titles = (
            f"Chapter 4's prediction: (DHEL - SimCLR) at tau {low:g} minus at "
            f"tau {high:g}, Holm over the table",
            f"Each loss at tau {low:g} minus at tau {high:g}, Holm over the table",
        )
        for title, found in zip(titles, (change, effect)):
            if found:
                print(title)
            for (key, read), d in found.items():
                print(f"  {TAU_LOSSES[key]:<13} {read:<6}{d.interval()}: {word(d)}")
    return {"groups": groups, "verdicts": verdicts, "change": change, "effect": effect}


# ------------------------------------------------------------------ KCL's sweeps
NONCONTRASTIVE = {"barlow": "Barlow Twins", "vicreg": "VICReg"}
KCL_SWEEPS = {  # section: (x field, default of the field, the reference x, label)
    "kcl batch": ("config.batch_size", None, 256, "B (12 epochs)"),
    "kcl batch steps": ("config.batch_size", None, 256, "B (468 steps)"),
    "kcl gamma": ("config.loss_kwargs.gamma", 16.0, 16.0, "gamma (B = 256)"),
}


def setting_groups(study: Study, section: str, field: str, default=None) -> dict:
    """``{x: seed group}`` of a section's settings present, ``x`` read at ``field``
    (``default`` where a record leaves it out: a loss's default keeps its name)."""
    out = {R.lookup(g[0], field, default): g for _, g in present_groups(study, section)}
    return dict(sorted(out.items()))


def kcl_report(study: Study) -> dict:
    """Print KCL's three sweeps (batch size at fixed epochs and at fixed steps, its
    energy weight gamma): each setting's seed mean and interval in both read-outs,
    and its difference from the sweep's reference setting with the book's verdict
    (Holm over each sweep's table, both read-outs; "equivalent" by TOST at one
    point). Returns ``{section: {(x, read-out): Difference}}`` for the asserts."""
    out = {}
    for section, (field, default, ref, label) in KCL_SWEEPS.items():
        groups = setting_groups(study, section, field, default)
        if ref not in groups:
            print(f"{section}: pending")
            continue
        found = R.compare_table(
            {
                (x, read): (summary(g, m), summary(groups[ref], m))
                for x, g in groups.items()
                if x != ref
                for read, m in READ.items()
            }
        )
        print(f"KCL, {label}: each setting, and its difference from {ref:g}")
        for x, g in groups.items():
            for read, m in READ.items():
                d = found.get((x, read))
                tail = f"  {d.interval()}: {word(d)}" if d else "  (reference)"
                head = f"{x:>6g}" if read == "kNN" else " " * 6
                print(f"  {head}  {read:<5} {_tau_cell(summary(g, m))}{tail}")
        out[section] = found
    return out


def noncontrastive_report(study: Study) -> dict:
    """Print Barlow Twins and VICReg (the "non-contrastive" section) against SimCLR and
    both untrained references in both read-outs: seed means and differences with the
    book's verdicts, one table (Holm over it). Returns
    ``{(loss, against, read-out): Difference}``."""
    head = headline(study)[0]
    groups = {run.key: g for run, g in present_groups(study, "non-contrastive")}
    if not groups:
        print("non-contrastive: pending")
        return {}
    against = [k for k in ("simclr", *REFS) if head.get(k)]
    found = R.compare_table(
        {
            (k, a, read): (summary(g, m), summary(head[a], m))
            for k, g in groups.items()
            for a in against
            for read, m in READ.items()
        }
    )
    for k, g in groups.items():
        cells = (f"{read} {_tau_cell(summary(g, m))}" for read, m in READ.items())
        print(f"{NONCONTRASTIVE[k]}: {', '.join(cells)}")
        for a in against:
            for read in READ:
                d = found[(k, a, read)]
                print(f"  vs {SHORT.get(a, a):<12} {read:<5} {d.interval()}: {word(d)}")
    return found


# ------------------------------------------------------------------ geometry
GEO_COLS = ("rank h", "rank z", "W-unif")  # the columns the verdicts read


def geometry_verdicts(head: Mapping, geo: Mapping, keys: Sequence[str]):
    """The geometry section's verdicts, printed: one table per untrained reference
    (every loss of ``keys`` against it on :data:`GEO_COLS`) and one table of the
    comparisons between settings the text makes (the references with each other,
    DHEL with SimCLR, KCL and DHEL (authors') with SimCLR and DHEL), each with Holm
    over itself and no equivalence margin (none is agreed for a rank or a
    uniformity). Returns ``({reference: {(key, column): Difference}},
    {(a, b, column): Difference})``."""
    cols = {c: GEOM[c] for c in GEO_COLS}
    refs = {}
    for ref in REFS:
        found = verdicts(head, [(k, ref) for k in keys], cols, None)
        refs[ref] = {(k, c): d for (k, _, c), d in found.items()}
        print(f"against {LABEL[ref]} (verdicts, Holm over the table):")
        print(textwrap.indent(verdict_words(refs[ref], keys, GEO_COLS), "  "))
    pairs = [("untrained_bn", "untrained", c) for c in GEO_COLS]
    pairs += [("dhel", "simclr", c) for c in GEO_COLS]
    pairs += [
        (k, o, c)
        for k in ("kcl", "dhel2v")
        for o in ("simclr", "dhel")
        for c in ("rank z", "W-unif")
    ]
    between = R.compare_table(
        {t: (geo[t[0]][t[2]], geo[t[1]][t[2]]) for t in pairs}, margin=None
    )
    print("between settings (a - b, 95% interval, Holm over the table):")
    print(difference_table(between, SHORT, scale=1, digits=2))
    return refs, between


def geometry(head: Mapping, keys: Iterable[str]) -> dict:
    """``{key: {column: seed summary}}`` of the geometry metrics (:data:`GEOM`)."""
    return {k: {c: summary(head[k], m) for c, m in GEOM.items()} for k in keys}


def geometry_table(geo: Mapping, order: Sequence[str] = HEADLINE) -> str:
    """The geometry table: mean ± sd over seeds of every metric, one row per key."""
    rows = []
    for k in [k for k in order if k in geo]:
        row = {"loss": SHORT[k]}
        for c, s in geo[k].items():
            row[c] = f"{s.mean:.{DIGITS[c]}f}±{s.sd:.{DIGITS[c]}f}"
        rows.append(row)
    return R.format_table(rows)


def plot_spectra(head: Mapping, order: Sequence[str], title: str) -> None:
    """Singular values (divided by the largest) of the final projections $z$ and
    backbone features $h$, seed 0 of each key; the untrained references dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    for ax, key, what in (
        (axes[0], "extra.final.singular_values_z", "projections $z$"),
        (axes[1], "extra.final.singular_values_features", "backbone features $h$"),
    ):
        for k in [k for k in order if head.get(k)]:
            s = np.asarray(R.lookup(head[k][0], key))
            style = {
                "untrained": {"color": "k", "ls": ":", "lw": 2},
                "untrained_bn": {"color": "grey", "ls": "--", "lw": 2},
            }.get(k, {})
            ax.semilogy(np.arange(1, len(s) + 1), s / s[0], label=SHORT[k], **style)
        ax.set(
            xlabel="index $k$",
            ylabel="$\\sigma_k / \\sigma_1$",
            title=what,
            ylim=(1e-4, 1.5),
        )
    handles = axes[1].get_legend_handles_labels()
    fig.legend(*handles, loc="lower center", ncol=5)  # below both panels
    fig.suptitle(textwrap.fill(title, 70))
    plt.tight_layout(rect=(0, 0.17, 1, 1))
    plt.show()


def _tracking_references(axes, head: Mapping) -> None:
    """The untrained references of :func:`plot_tracking`: a point on the left, a
    line on the right."""
    for ref, marker, ls, label in (
        (head.get("untrained"), "k*", ":", "untrained"),
        (head.get("untrained_bn"), "kP", "--", "untrained, BN re-est."),
    ):
        if ref:
            axes[0].plot(
                [summary(ref, "metrics.uniformity").mean],
                [summary(ref, "metrics.alignment").mean],
                marker,
                ms=11,
                label=label,
            )
            axes[1].axhline(
                summary(ref, "metrics.effective_rank").mean,
                color="k",
                ls=ls,
                label=label,
            )


def plot_tracking(head: Mapping, order: Sequence[str], title: str) -> None:
    """Geometry along training, seed means: alignment against uniformity (left) and
    the effective rank of $z$ (right), against the untrained references."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    trained_keys = [k for k in order if not k.startswith("untrained")]
    for k in [k for k in trained_keys if head.get(k)]:
        recs = head[k]
        _, unif = along(recs, "uniformity")
        _, align = along(recs, "alignment")
        ep, rank = along(recs, "effective_rank")
        (line,) = axes[0].plot(unif, align, "o-", ms=4, label=SHORT[k])
        axes[0].plot(unif[-1:], align[-1:], "o", ms=8, color=line.get_color())
        axes[1].plot(ep, rank, "o-", ms=4, label=SHORT[k])
    _tracking_references(axes, head)
    axes[0].set(
        xlabel="uniformity (lower: more uniform)",
        ylabel="alignment (lower: better)",
        title="path (large dot: end)",
    )
    axes[1].set(
        xlabel="epoch",
        ylabel="effective rank of $z$",
        title="effective rank of $z$",
    )
    handles = axes[1].get_legend_handles_labels()
    fig.legend(*handles, loc="lower center", ncol=5)  # below both panels
    fig.suptitle(textwrap.fill(title, 70))
    plt.tight_layout(rect=(0, 0.17, 1, 1))
    plt.show()


# ------------------------------------------------------------------ many classes
def many_class_groups(study: Study, section: str, dataset: str) -> dict:
    """``{key: seed group}`` of the untrained network and a section's runs on one
    data set (diverged runs have no accuracies: :meth:`Study.groups` leaves them
    out)."""
    return {
        study.key(base): recs
        for base, recs in study.groups("baseline", section).items()
        if recs[0]["config"]["dataset"] == dataset
    }


def many_class_table(groups: Mapping, keys: Iterable[str]) -> str:
    """kNN and probe of the keys (``pending`` when absent) with the kNN interval."""
    rows = []
    for k in keys:
        if k not in groups:
            rows.append({"loss": LABEL[k], "kNN": "pending"})
            continue
        knn, probe = summary(groups[k], KNN), summary(groups[k], PROBE)
        rows.append(
            {
                "loss": LABEL[k],
                "kNN": str(knn),
                "linear probe": str(probe),
                "95% kNN": interval(knn),
            }
        )
    return R.format_table(rows, ["loss", "kNN", "linear probe", "95% kNN"])


# ------------------------------------------------------------------ the full grid
def grid_shapes(study: Study) -> dict[str, set[tuple[int, int]]]:
    """``{section: {(epochs, batch size), ...}}`` of a study's plan."""
    return {
        section: {(r.args["epochs"], r.args["batch_size"]) for r in runs}
        for section, runs in study.sections.items()
    }


def grid_status(study: Study) -> str:
    """How many runs of a GPU tier are present, the longest run's estimated time,
    and the command of one pending run."""
    minutes = study.longest_run_s() / 60
    lines = [
        f"{study.tier}-grid runs present: {study.present()} of {len(study.plan)};",
        f"estimated time per run at the target speed: at most {minutes:.1f} min",
    ]
    return "\n".join(lines + study.example(width=80))


def redraw(study: Study, title: str) -> None:
    """Sections 2--6 of the chapter from another tier's records: the headline table
    and figure, the sweeps, spectra, geometry, and the many-class tables."""
    head, means = headline(study)
    print(headline_table(means))
    if means:
        plot_headline(means, title)
    plot_sweeps(study, title)
    print(sweep_tables(study))
    if any(head.values()):
        plot_spectra(head, HEADLINE, title)
        plot_tracking(head, HEADLINE, title)
        print(geometry_table(geometry(head, means)))
    for section, dataset, name in (
        ("tiny", "tiny-imagenet-32", "Tiny-ImageNet (200 classes)"),
        ("cifar100", "cifar100", "CIFAR-100"),
    ):
        groups = many_class_groups(study, section, dataset)
        if groups:
            print(f"{name}:\n{many_class_table(groups, groups)}")
