"""Chapter 1's read-outs: the tables, figures and run predicates of the collapse toy.

Chapter 1 (``book/01_rank1_collapse.ipynb``) trains the rank-1 subspace toy of
:mod:`cl_lib.experiments.toy` over a learning-rate sweep, with and without CLOA's
anchor term; its going-deeper part (``book/01b_collapse_deeper.ipynb``) follows long
runs through their fused plateaus and intervenes on the weights. This module holds
what the two pages print or draw that is not a question of their own: the sweep
figure and tables, the static view of the training panel, the predicates that stop
or fork long runs, the plateau and intervention tables and the full-profile summary
file. The notebooks keep the asserts that check each statement of their text.

Sweep results are the dictionaries of :func:`toy.sweep_toy_batch`,
``{(loss, lr): {metric: np.ndarray over seeds}}``; long runs are
:class:`toy.ToyRun` objects, read through their per-epoch ``history``.
"""

from __future__ import annotations

import json
import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np

from cl_lib.experiments import toy
from cl_lib.io import write_json

SHORT = {
    "variance_sphere": "variance",
    "effective_rank_sphere": "eff. rank",
    "class_mean_collinearity": "collinearity",
    "linear_probe": "probe",
    "knn": "kNN",
    "diverged": "diverged",
}
"""Short column names of the sweep's measures."""


def say(text: str, width: int = 80) -> None:
    """Print ``text`` wrapped to the page width, paragraph by paragraph (lines after
    the first of a paragraph indented by two spaces)."""
    print(
        "\n".join(
            textwrap.fill(p, width, subsequent_indent="  ") for p in text.split("\n")
        )
    )


def best(results: dict, loss: str, lrs, metric: str = "linear_probe") -> float:
    """The best seed mean of ``metric`` over the learning rates ``lrs``."""
    return max(np.nanmean(results[loss, lr][metric]) for lr in lrs)


def show(runs: dict | None, metric: str) -> str:
    """One table entry: ``"-"`` for a setting not run, ``"div."`` when every seed
    diverged, else the seed mean +- std of ``metric``."""
    if runs is None:
        return "-"
    return "div." if runs["diverged"].all() else toy.mean_std(runs[metric])


def plot_sweep(results_list, styles, title: str, losses, lrs) -> None:
    """Variance, effective rank, class-mean collinearity and linear probe against the
    learning rate, one colour per loss, one line style per result set (``"-o"``: the
    loss alone, any other style: with CLOA); diverged seeds are left out."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    metrics = [
        "variance_sphere",
        "effective_rank_sphere",
        "class_mean_collinearity",
        "linear_probe",
    ]
    for metric, ax in zip(metrics, axes.flat):
        for results, style in zip(results_list, styles):
            for i, loss in enumerate(losses):
                m = np.array(
                    [
                        np.nanmean(
                            np.where(
                                results[loss, lr]["diverged"] > 0,
                                np.nan,
                                results[loss, lr][metric],
                            )
                        )
                        if (loss, lr) in results
                        else np.nan
                        for lr in lrs
                    ]
                )  # gaps: diverged
                label = f"{loss}{' + CLOA' if style != '-o' else ''}"
                ax.plot(lrs, m, style, color=f"C{i}", label=label)
        ax.set(xscale="log", title=metric.replace("_", " "))
    for ax in axes[1]:
        ax.set_xlabel("learning rate")
    axes[1, 1].axhline(1 / 3, color="grey", lw=0.8, ls=":")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4)
    fig.suptitle(title)
    plt.tight_layout(rect=(0, 0.06 * len(results_list), 1, 1))  # room for the legend
    plt.show()


def print_sweep_tables(base: dict, cols) -> None:
    """The sweep as two text tables (the first three measures of ``cols``, then the
    rest), after a line that names the short column names."""
    say("columns: " + ", ".join(f"{SHORT[m]} = {m}" for m in cols))
    short_base = {k: {SHORT[m]: v[m] for m in cols} for k, v in base.items()}
    print(toy.sweep_table(short_base, [SHORT[m] for m in cols[:3]]))
    print()
    print(toy.sweep_table(short_base, [SHORT[m] for m in cols[3:]]))


def print_anchor_tables(base: dict, cloa: dict, losses, lrs=(1e-2, 1e-1, 1.0)):
    """Without and with CLOA side by side, for each loss and learning rate of
    ``lrs``: variance and collinearity, then probe and kNN (two tables, each fits
    the page)."""
    for ms in [
        ["variance_sphere", "class_mean_collinearity"],
        ["linear_probe", "knn"],
    ]:
        print(
            f"{'loss':>13} {'lr':>7} | "
            + " | ".join(f"{SHORT[m]:>12} {'+ CLOA':>12}" for m in ms)
        )
        for loss in losses:
            for lr in lrs:
                a, b = base[loss, lr], cloa.get((loss, lr))
                print(
                    f"{loss:>13} {lr:>7g} | "
                    + " | ".join(f"{show(a, m):>12} {show(b, m):>12}" for m in ms)
                )
        print()


def plot_panel(base: dict, cloa: dict, settings, epochs: int, tau: float) -> None:
    """The training panel's read-out (variance, effective rank / 3, probe, kNN) for
    ``settings``, a list of ``(loss, lr, label_fraction)`` already trained: bars are
    seed means, dots seeds."""
    shown = ["variance_sphere", "effective_rank_sphere", "linear_probe", "knn"]
    fig, axes = plt.subplots(2, 3, figsize=(10, 6.4), sharey=True)
    for ax, (loss, lr, frac) in zip(axes.flat, settings):
        runs = (cloa if frac else base)[loss, lr]
        for j, m in enumerate(shown):
            scale = 3 if m == "effective_rank_sphere" else 1  # rank <= 3 in S^2
            v = np.asarray(runs[m], dtype=float) / scale
            ax.bar(j, v.mean(), color=f"C{j}", alpha=0.6)
            ax.plot(np.full(len(v), j), v, "k.", ms=5)  # one dot per seed
        ax.set_xticks(range(len(shown)), ["var.", "rank/3", "probe", "kNN"])
        name = loss.replace("barlow_twins", "Barlow Twins")
        ax.set_title(
            f"{name.replace('infonce', 'InfoNCE')}\nlr = {lr:g}, labels {frac:.0%}"
        )
        ax.set_ylim(0, 1.05)
    for ax in axes[:, 0]:
        ax.set_ylabel("bar: mean, dots: seeds")
    fig.suptitle(f"Static view of the panel: {epochs} epochs, tau = {tau}")
    plt.tight_layout()
    plt.show()


# ------------------------------------------------------------- long runs: predicates
def fused_epochs(history: dict) -> np.ndarray:
    """The epochs (positions in ``history``) at which a run is *fused*: class means
    collinear (> 0.9) while the points are spread out (sphere variance > 0.8, unlike
    the narrow cone of the untrained network)."""
    c, v = (
        np.array(history[k]) for k in ["class_mean_collinearity", "variance_sphere"]
    )
    return np.nonzero((c > 0.9) & (v > 0.8))[0]


def escaped_for_good(epochs: int, after: int):
    """A ``stop_when`` predicate: past epoch ``epochs``, a run that has fused and has
    not been fused for ``after`` epochs stops (its escape is decided by then)."""

    def stop(h):
        f, epoch = fused_epochs(h), h["epoch"][-1]
        return epoch >= epochs and len(f) > 0 and epoch - f.max() >= after

    return stop


def separated_at(history: dict, epochs: int):
    """The first epoch after ``epochs`` with class-mean collinearity < 0.8, or
    None."""
    late = zip(history["epoch"], history["class_mean_collinearity"])
    return next((e for e, c in late if e > epochs and c < 0.8), None)


def settled(epochs: int, probe_after: int):
    """A ``stop_when`` predicate: a run stops ``probe_after`` epochs after its class
    means separate (:func:`separated_at`)."""

    def stop(h):
        e = separated_at(h, epochs)
        return e is not None and h["epoch"][-1] >= e + probe_after

    return stop


def escape_delay(history: dict, epochs: int):
    """Epochs after ``epochs`` until the class-mean collinearity falls below 0.8
    (None: not within the run)."""
    c = np.array(history["class_mean_collinearity"])
    late = np.nonzero(c[epochs + 1 :] < 0.8)[0]
    return int(late[0]) + 1 if len(late) else None


def stuck_forker(arms: dict, seeds, epochs: int):
    """A ``fork`` callable for :func:`toy.train_toy_batch` and the list it fills.

    Called after epoch ``epochs`` with the histories of the batch, it forks every
    run among the first ``len(seeds)`` that is fused at that epoch once per arm
    (``{name: intervention}``), and appends ``(name, seed)`` to the list, in the
    order of the forks."""
    forked = []

    def fork(hists):
        fused_now = [
            i for i, h in enumerate(hists[: len(seeds)]) if epochs in fused_epochs(h)
        ]
        forked.extend((name, seeds[i]) for name in arms for i in fused_now)
        return [(i, arms[name]) for name in arms for i in fused_now]

    return fork, forked


# ------------------------------------------------------------- long runs: read-outs
def plot_long_runs(long: dict, seeds, epochs: int) -> None:
    """Long runs at one learning rate, ``long[loss, seed]``: class-mean collinearity
    for InfoNCE and Barlow Twins, InfoNCE's angular gradient and effective rank on
    the sphere, against the epoch (dotted: the sweep's budget ``epochs``; dots:
    fused epochs)."""
    _, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    panels = [
        ("infonce", "class_mean_collinearity"),
        ("barlow_twins", "class_mean_collinearity"),
        ("infonce", "angular_grad"),
        ("infonce", "effective_rank_sphere"),
    ]
    for ax, (loss, key) in zip(axes.flat, panels):
        for s in seeds:
            h = long[loss, s].history
            ax.plot(h["epoch"], h[key], lw=1, color=f"C{s}", label=f"seed {s}")
            f = fused_epochs(h)
            ax.plot(f, np.array(h[key])[f], ".", ms=3, color=f"C{s}")  # fused epochs
        ax.axvline(epochs, color="grey", ls=":", lw=1)
        ax.set(title=f"{loss}, lr = 1: {key.replace('_', ' ')}")
    for ax in axes[1]:
        ax.set_xlabel("epoch (dotted line: the sweep's budget; dots: fused)")
    axes[0, 0].legend()
    plt.tight_layout()
    plt.show()


def print_long_runs(long: dict) -> None:
    """One line per long run: epochs trained, fused epochs, the last of them, final
    class-mean collinearity and linear probe."""
    print(
        f"{'loss':>13} {'seed':>4} {'epochs':>6} {'fused epochs':>12} "
        f"{'last fused':>10} {'final collinearity':>18} {'probe':>6}"
    )
    for (loss, s), r in long.items():
        f, h = fused_epochs(r.history), r.history["class_mean_collinearity"]
        print(
            f"{loss:>13} {s:>4} {r.history['epoch'][-1]:>6} {len(f):>12} "
            f"{f.max() if len(f) else '-':>10} "
            f"{h[-1]:>18.2f} {r.metrics['linear_probe']:>6.2f}"
        )


def print_plateau_table(plateau: dict, ref: tuple) -> None:
    """Loss, angular gradient and effective rank on the sphere, averaged over the
    fused epochs and over the epochs after the escape, one row per seed of
    ``plateau`` (``{seed: {(key, "fused" | "after"): value}}``), and a last row for
    a collapsed line state, ``ref = (loss, angular gradient, rank)``."""
    print(
        f"{'InfoNCE, lr = 1':>22} | {'loss':>11} | {'angular gradient':>16} | "
        f"{'rank on sphere':>14}"
    )
    print(
        f"{'':>22} | {'fused':>5} {'after':>5} | {'fused':>7} {'after':>8} | "
        f"{'fused':>6} {'after':>7}"
    )
    cols = [
        ("eval_loss", 5, 0),
        ("angular_grad", 7, 1),
        ("effective_rank_sphere", 6, 1),
    ]
    for s, p in plateau.items():
        print(
            f"{f'seed {s}':>22} | "
            + " | ".join(
                f"{p[k, 'fused']:>{w}.2f} {p[k, 'after']:>{w + d}.2f}"
                for k, w, d in cols
            )
        )
    ref_loss, ref_grad, ref_rank = ref
    print(
        f"{'collapsed line state':>22} | {ref_loss:>11.2f} | {ref_grad:>16.0g} | "
        f"{ref_rank:>14.2f}"
    )


def print_interventions(delay: dict, info: dict, stuck, budget: int) -> None:
    """The intervention table: for each stuck seed the epochs until the class means
    separate per arm (``delay[arm, seed]`` for ``"control"``, ``"rescale"``,
    ``"reset"`` and ``"revive"``; None: not within ``budget`` epochs), the rescale
    factor and the number of units revived (``info[arm, seed]``)."""
    show_delay = lambda v: f"> {budget}" if v is None else str(v)
    print("epochs until the class means separate (reset: rescale + momentum reset):")
    print(
        f"{'seed':>4} | {'control':>8} {'rescale':>8} {'reset':>6} {'revive':>7} | "
        f"rescale factor | units revived"
    )
    for s in stuck:
        print(
            f"{s:>4} | {show_delay(delay['control', s]):>8} "
            f"{show_delay(delay['rescale', s]):>8} {show_delay(delay['reset', s]):>6} "
            f"{show_delay(delay['revive', s]):>7} | {info['rescale', s]:>14.3f} | "
            f"{info['revive', s]:>13}"
        )


def print_probe_after(probe_after, stuck, arms, probe_epochs: int) -> None:
    """The linear probe ``probe_epochs`` after the class means separate, one row per
    stuck seed, one column per arm (``"control"`` first), then the median (worst)
    per arm."""
    names = ("control", *arms)
    arm = lambda a: np.array([probe_after[a, s] for s in stuck])
    print(f"linear probe {probe_epochs} epochs after the class means separate:")
    print(f"{'seed':>4} | " + " ".join(f"{a:>8}" for a in names))
    for s in stuck:
        row = " ".join(f"{probe_after[a, s]:>8.2f}" for a in names)
        print(f"{s:>4} | {row}")
    say(
        f"linear probe {probe_epochs} epochs after the class means separate, "
        "median (worst): "
        + ", ".join(f"{a} {np.median(arm(a)):.2f} ({arm(a).min():.2f})" for a in names)
    )


# ------------------------------------------------------------ full-profile summary
def update_summary(path: str, **parts) -> dict:
    """Write ``parts`` into the JSON summary at ``path``, keeping the keys of an
    existing file that ``parts`` does not name; a dictionary in both is merged one
    level deep (so two pages can each write their part of ``config``). Returns the
    summary written."""
    summary = {}
    if os.path.exists(path):
        with open(path) as f:
            summary = json.load(f)
    for key, value in parts.items():
        old = summary.get(key)
        merge = isinstance(old, dict) and isinstance(value, dict)
        summary[key] = {**old, **value} if merge else value
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_json(summary, path)
    return summary


def print_full_sweep(full: dict, losses) -> None:
    """Chapter 1's part of a stored full-profile summary: provenance, the linear
    probe and class-mean collinearity at lr = 1e-2 and 1 without and with CLOA, and
    the 0% vs 5% label count."""
    say(
        f"full profile ({full['hardware']['cpu']}, commit "
        f"{full['library_commit'][:7]}, {full['date_utc'][:10]}): "
        f"seeds {full['seeds']}, {full['epochs']} epochs; linear probe (mean +- std), "
        f"lr = 1e-2 / 1"
    )
    shown = [r for r in full["rows"] if r["lr"] in (1e-2, 1.0)]
    for row in sorted(
        shown, key=lambda r: (losses.index(r["loss"]), r["lr"], r["anchor"])
    ):
        div = all(row["diverged"])
        tag = lambda k, row=row, div=div: "div." if div else toy.mean_std(row[k])
        print(
            f"{row['loss']:>13} {'+ CLOA 10%' if row['anchor'] else '':>10} "
            f"lr={row['lr']:<5g} "
            f"probe {tag('linear_probe'):>12}  collinearity "
            f"{tag('class_mean_collinearity'):>12}"
        )
    fr = full["label_fraction_5"]
    say(
        f"5% of labels, {len(fr['seeds'])} seeds: runs with probe >= "
        f"{fr['good']:.2f}: "
        f"{sum(p >= fr['good'] for p in fr['probe_0'])} without anchors, "
        f"{sum(p >= fr['good'] for p in fr['probe_5'])} with 5%"
    )


def print_full_interventions(full: dict, epochs: int) -> None:
    """The going-deeper part of a stored full-profile summary: per arm of the weight
    interventions, the median epochs until the class means separate and, where the
    summary has it, the median linear probe some epochs after that."""
    iv = full["intervention"]
    per_seed = lambda part, arm: [iv[part][f"{arm}_{s}"] for s in iv["stuck"]]
    arms = [
        a
        for a in ["control", "rescale", "reset", "revive"]
        if all(f"{a}_{s}" in iv["delay"] for s in iv["stuck"])
    ]
    med = lambda a: np.median(
        [iv["budget"] + 1 if d is None else d for d in per_seed("delay", a)]
    )
    say(
        f"interventions: {len(iv['stuck'])} of {len(iv['seeds'])} InfoNCE seeds "
        f"fused at epoch {epochs}; median epochs until the class means separate: "
        + ", ".join(f"{a} {med(a):.0f}" for a in arms)
    )
    if "probe_after" in iv:
        probe = lambda a: np.median(per_seed("probe_after", a))
        say(
            "median linear probe after: "
            + ", ".join(f"{a} {probe(a):.2f}" for a in arms)
        )
