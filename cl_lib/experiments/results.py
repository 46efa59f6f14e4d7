r"""Results files of the trainer: run, load, pick fields, tabulate, plot, say what is
missing.

``python -m cl_lib.train ... --out DIR`` writes ``DIR/results.json``: ``config``,
``profile``, ``dataset``, ``model``, ``hardware``, ``torch_version``,
``library_commit``, ``date_utc``, ``wall_time_s``, per-epoch ``history``, ``final``
(``knn_acc``, ``linear_probe_acc``) and ``metrics`` (alignment, uniformity, effective
ranks, embedding variances; with ``eval_every`` also in ``history`` at each evaluation).
The real-image chapters (10--12) read such files from
``book/results/{quick,full}/chNN/`` and never type a number themselves.

Running (``python -m cl_lib.experiments.results SAVE.json [--track-every K] --
<cl_lib.train flags>``):

- :func:`train_and_record` -- runs ``cl_lib.train`` with its own flags and saves its
  results dict plus ``"extra"``: the embedding variance of Li & Pimentel-Alarcon (seed
  001, Fig. 2), its scale-free version on the sphere, singular-value spectra, and
  (``--track-every``) geometry along training (:func:`geometry_snapshot`), which the
  trainer does not store; ``"command"`` records the exact command line. A run stopped by
  a non-finite loss is saved as diverged.

Reading:

- :func:`load_results` -- every ``*.json`` under a folder (or one file), each tagged
  with ``record["source"]``, its path relative to the folder (no machine paths in the
  book);
- :func:`lookup` -- a field by dotted path (``"config.lr"``, ``"final.knn_acc"``,
  ``"history.-1.loss"``), a function of the record (:func:`peak_lr`), or the first
  present of several candidates;
- :func:`select`, :func:`curves`, :func:`table_rows` + :func:`format_table` -- filter,
  reduce to $y(x)$ per group (mean over seeds), print a rounded table;
- :func:`plot_curves` -- one matplotlib line per group, with 95% binomial error bars for
  accuracies (:func:`binomial_halfwidth`);
- the planned runs of chapters 10--12, their exact commands and which of them have no
  results file yet are in :mod:`cl_lib.experiments.grid`;
- :func:`by_seed_group`, :func:`seed_summary` -- the seeds of a run (``name``,
  ``name_s1``, ``name_s2``) as one mean +- sd with the Student-$t$ 95% interval of the
  mean over seeds;
- :func:`compare_table`, :func:`compare`, :func:`difference` -- the book's verdict on
  two settings, the rule of :mod:`cl_lib.stats`: the 95% interval of their difference
  over seeds (Welch), Holm within a table, "equivalent within ±1 point" only by an
  equivalence test, no verdict for one seed;
- :func:`correctness` -- the per-image correctness a results file stores
  (``final.knn_correct``, ``final.linear_probe_correct``), for
  :func:`cl_lib.stats.paired_proportions` between two runs;
- :func:`provenance` -- which file, profile, hardware, torch, commit, date and wall time
  a number came from.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from cl_lib import stats as S
from cl_lib.experiments.migrate import migrate_record

__all__ = [
    "retrieval_snapshot",
    "retrieval_images",
    "load_results",
    "lookup",
    "select",
    "curves",
    "format_table",
    "table_rows",
    "plot_curves",
    "binomial_halfwidth",
    "seed_base",
    "by_seed_group",
    "SeedSummary",
    "seed_summary",
    "difference",
    "compare",
    "compare_table",
    "correctness",
    "HIGHER",
    "LOWER",
    "EQUIVALENT",
    "UNDECIDED",
    "ONE_SEED",
    "run_name",
    "peak_lr",
    "provenance",
    "class_separation",
    "separation_values",
    "separation_table",
    "SEPARATION_ROWS",
    "geometry_snapshot",
    "train_and_record",
    "main",
    "MISSING",
]


class _Missing:
    """
    Sentinel for 'no such field' (``None`` can be a legitimate value in a results file).
    """

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def load_results(path: str | Path, pattern: str = "*.json") -> list[dict]:
    """Load one results JSON file, or every file matching ``pattern`` under a folder
    (recursive, sorted by relative path). Each record gets ``record["source"]``: its
    path relative to the folder (the file name for a single file). A missing folder
    gives ``[]`` (no runs yet); a missing file, a file that is not JSON, or JSON that is
    not an object raises ``ValueError``. Records of an older schema are upgraded as
    they are read (:func:`cl_lib.experiments.migrate.migrate_record`)."""
    path = Path(path)
    if path.is_dir():
        files, root = sorted(path.rglob(pattern)), path
    elif path.is_file():
        files, root = [path], path.parent
    elif path.suffix == ".json":
        raise ValueError(f"results file {path.name!r} does not exist")
    else:
        return []
    records = []
    for f in files:
        try:
            record = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(
                f"results file {f.relative_to(root)} is not valid JSON: {err}"
            ) from err
        if not isinstance(record, dict):
            raise ValueError(
                f"results file {f.relative_to(root)} holds a JSON "
                f"{type(record).__name__}, expected an object"
            )
        migrate_record(record)  # a file written before the current schema
        record["source"] = str(f.relative_to(root))
        records.append(record)
    return records


def _lookup_one(record: Mapping, dotted: str | Callable[[Mapping], Any]) -> Any:
    if callable(dotted):  # a derived quantity, e.g. the peak learning rate
        try:
            return dotted(record)
        except (KeyError, TypeError, ValueError, IndexError):
            return MISSING
    node: Any = record
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit():
            try:
                node = node[int(part)]
            except IndexError:
                return MISSING
        else:
            return MISSING
    return node


def lookup(record: Mapping, key: str | Sequence[str], default: Any = MISSING) -> Any:
    """The value at a dotted path (``"config.lr"``; integers index lists:
    ``"history.-1.loss"``).

    ``key`` may also be a function of the record (a derived quantity; errors count as
    absent),
    or a list of candidates: the first one present wins. Returns ``default`` (the
    :data:`MISSING` sentinel unless given) when none is present.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"record must be a dict, got {type(record).__name__}")
    keys = [key] if isinstance(key, str) or callable(key) else list(key)
    if not keys:
        raise ValueError("key must be a dotted path or a non-empty list of them")
    for k in keys:
        value = _lookup_one(record, k)
        if value is not MISSING:
            return value
    return default


def select(
    records: Iterable[Mapping], where: Mapping[str, Any] | None = None, **equal: Any
) -> list[Mapping]:
    """Records whose fields equal the given values. ``where`` maps dotted paths to
    values (``{"config.loss": "dhel"}``); keyword arguments are looked up under
    ``config`` (``select(rs, loss="dhel", batch_size=512)``). A value that is a
    list/tuple/set means "any of these". Floats compare with a relative tolerance of
    1e-9 (lr grids are floats)."""
    conditions = dict(where or {})
    conditions.update({f"config.{k}": v for k, v in equal.items()})

    def matches(value: Any, wanted: Any) -> bool:
        if isinstance(wanted, (list, tuple, set, frozenset)):
            return any(matches(value, w) for w in wanted)
        if (
            isinstance(wanted, float)
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            return math.isclose(float(value), wanted, rel_tol=1e-9, abs_tol=0.0)
        return value == wanted

    return [
        r
        for r in records
        if all(matches(lookup(r, k), v) for k, v in conditions.items())
    ]


def curves(
    records: Iterable[Mapping],
    x: str | Sequence[str],
    y: str | Sequence[str],
    group: str | Sequence[str] | None = None,
) -> dict[Any, dict[str, list[float]]]:
    """Reduce runs to curves $y(x)$, one per value of ``group``: ``{group: {"x": [...],
    "y": [...], "n": [...]}}`` with ``x`` sorted and ``y`` the mean over the runs
    (seeds) sharing an ``x``. Runs lacking ``x`` or ``y`` are skipped; non-finite ``y``
    (a diverged run, stored as ``NaN``) is kept as ``nan`` so the plot shows a gap where
    training broke."""
    buckets: dict[Any, dict[float, list[float]]] = {}
    for r in records:
        xv, yv = lookup(r, x), lookup(r, y)
        if xv is MISSING or yv is MISSING or xv is None:
            continue
        g = lookup(r, group, default=None) if group is not None else None
        yv = float("nan") if yv is None else float(yv)
        buckets.setdefault(g, {}).setdefault(float(xv), []).append(yv)
    out = {}
    for g, by_x in buckets.items():
        xs = sorted(by_x)
        ys = [sum(by_x[v]) / len(by_x[v]) for v in xs]
        out[g] = {"x": xs, "y": ys, "n": [len(by_x[v]) for v in xs]}
    return out


def _format_cell(value: Any, digits: int) -> str:
    if value is MISSING or value is None:
        return "--"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{max(digits - 1, 0)}e}"
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(
    records: Iterable[Mapping],
    columns: Mapping[str, str | Sequence[str]],
    digits: int = 3,
) -> list[dict[str, str]]:
    """One row per record: ``{column title: formatted value}``; ``columns`` maps titles
    to dotted paths (or lists of candidates). Floats are rounded to ``digits`` decimals
    (scientific notation below 1e-3, so learning rates read well); absent fields show as
    ``--``."""
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    return [
        {
            title: _format_cell(lookup(r, path), digits)
            for title, path in columns.items()
        }
        for r in records
    ]


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> str:
    """
    A plain-text table (header, rule, rows) with left-aligned columns, for ``print``.
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[str(row.get(c, "--")) for c in columns] for row in rows]
    widths = [
        max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)
    ]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines = [fmt.format(*columns), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*line).rstrip() for line in cells]
    return "\n".join(lines)


def binomial_halfwidth(acc: float, n: int, z: float = 1.96) -> float:
    r"""Half-width of the normal-approximation confidence interval of an accuracy
    measured on ``n`` test images: $z\sqrt{a(1-a)/n}$ (95% for $z=1.96$)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= acc <= 1.0:
        raise ValueError(f"acc must be in [0, 1], got {acc}")
    return z * math.sqrt(acc * (1.0 - acc) / n)


_SEED_SUFFIX = "_s"


def seed_base(name: str) -> str:
    """The name a run has for seed 0: ``"simclr_b256_t0.5_s2"`` ->
    ``"simclr_b256_t0.5"`` (the grid names seed ``s > 0`` with a suffix ``_s<s>``)."""
    head, sep, tail = name.rpartition(_SEED_SUFFIX)
    return head if sep and head and tail.isdigit() else name


def by_seed_group(records: Iterable[Mapping]) -> dict[str, list[Mapping]]:
    """Records grouped by :func:`seed_base` of their :func:`run_name`, each group in
    seed order, groups in name order."""
    groups: dict[str, list[Mapping]] = {}
    for r in sorted(records, key=run_name):
        groups.setdefault(seed_base(run_name(r)), []).append(r)
    return dict(sorted(groups.items()))


class SeedSummary:
    """One metric over the seeds of a run: ``mean``, sample ``sd``, ``n`` seeds,
    ``values`` (one per seed, in seed order) and ``halfwidth`` of the Student-$t$ 95%
    interval of the mean (infinite for one seed: no interval); ``low``/``high`` are its
    ends. ``str`` gives ``"0.402 +- 0.004 (3)"``. Two summaries are compared by
    :func:`difference` / :func:`compare_table`, never by their intervals' overlap."""

    __slots__ = ("mean", "sd", "n", "halfwidth", "values")

    def __init__(
        self, mean: float, sd: float, n: int, halfwidth: float, values=()
    ) -> None:
        self.mean, self.sd, self.n = float(mean), float(sd), int(n)
        self.halfwidth, self.values = float(halfwidth), tuple(values)

    low = property(lambda self: self.mean - self.halfwidth)
    high = property(lambda self: self.mean + self.halfwidth)

    def __iter__(self):
        return iter((self.mean, self.sd, self.n, self.halfwidth))

    def __repr__(self) -> str:
        return (
            f"SeedSummary(mean={self.mean!r}, sd={self.sd!r}, n={self.n}, "
            f"halfwidth={self.halfwidth!r})"
        )

    def __str__(self) -> str:
        if self.n == 1:
            return f"{self.mean:.3f} (1)"
        return f"{self.mean:.3f} +- {self.sd:.3f} ({self.n})"


def seed_summary(records: Sequence[Mapping], key: str = "final.knn_acc") -> SeedSummary:
    r"""Mean, sample standard deviation and the 95% interval of the mean of one metric
    over the seeds of a run.

    The interval is Student's: $\bar a \pm t_{k-1,\,0.975}\, s/\sqrt{k}$ for $k$ seeds
    with sample sd $s$ -- the training randomness. The test set is the same for every
    run, so its sampling is not added (it cancels when two settings are compared on the
    same images). One seed has no interval (infinite half-width). The interval
    describes one setting; whether two settings differ is decided by the interval of
    their *difference* (:func:`compare_table`).

    Args:
        records: the runs (typically one group of :func:`by_seed_group`); non-empty.
        key: a field for :func:`lookup`.

    Returns:
        :class:`SeedSummary`.
    """
    if not records:
        raise ValueError("seed_summary needs at least one record")
    found = [lookup(r, key) for r in records]
    absent = [run_name(r) for r, v in zip(records, found) if v is MISSING or v is None]
    if absent:
        raise ValueError(
            f"{key} is missing in {', '.join(absent)} (diverged or unfinished runs "
            "have no final metrics: leave them out of a summary)"
        )
    values = [float(v) for v in found]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{key} is not finite in every record: {values}")
    k = len(values)
    mean = sum(values) / k
    if k == 1:
        return SeedSummary(mean, 0.0, 1, math.inf, values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.975, k - 1)) * sd / math.sqrt(k)
    return SeedSummary(mean, sd, k, half, values)


HIGHER, LOWER, UNDECIDED, ONE_SEED = S.HIGHER, S.LOWER, S.UNDECIDED, S.ONE_SEED
EQUIVALENT = S.equivalent_words(S.MARGIN)  # "equivalent within ±1 point"


def _values(x: SeedSummary | Sequence[Mapping] | Sequence[float], key: str):
    """Seed values of a summary, of records (at ``key``) or of plain numbers."""
    if isinstance(x, SeedSummary):
        return list(x.values)
    items = list(x)
    if items and isinstance(items[0], Mapping):
        return list(seed_summary(items, key).values)
    return [float(v) for v in items]


def compare_table(
    comparisons: Mapping[Any, tuple[Any, Any]],
    key: str = "final.knn_acc",
    margin: float | None = S.MARGIN,
) -> dict[Any, S.Difference]:
    r"""The book's verdicts on the comparisons of one table: the rule of
    :func:`cl_lib.stats.verdict_table`.

    Each ``label: (a, b)`` compares setting ``a`` with setting ``b``, each given as a
    :class:`SeedSummary`, a seed group of records (read at ``key``) or a list of
    numbers. The difference of the seed means gets Welch's 95% interval; the p-values of
    the table are Holm-corrected; the verdict is ``"higher"``/``"lower"`` (the
    difference is non-zero after the correction), ``"equivalent within ±1 point"``
    (TOST at ``margin``, corrected), else ``"undecided"``; with one seed on either side,
    ``"one seed"`` and no test. Seeds are treated as independent (Welch). Pairing seed
    $s$ of one setting with seed $s$ of the other (:func:`cl_lib.stats.paired`) is
    valid only where the seed fixes the same initial weights, data order and
    augmentations in both; the book does not rely on it.

    Args:
        comparisons: label -> (a, b), in the order the table reads.
        key: the metric when records are given.
        margin: equivalence margin (0.01: one point of accuracy); None for a metric
            with no agreed margin (a rank, a uniformity): no equivalence verdict.

    Returns:
        label -> :class:`cl_lib.stats.Difference` (``.verdict``, ``.interval()``,
        ``.p``, ``.p_adj``).
    """
    return S.verdict_table(
        {k: (_values(a, key), _values(b, key)) for k, (a, b) in comparisons.items()},
        margin=margin,
    )


def difference(
    a: Any, b: Any, key: str = "final.knn_acc", margin: float | None = S.MARGIN
) -> S.Difference:
    """One comparison standing alone (a table of one): :func:`compare_table`."""
    return compare_table({0: (a, b)}, key=key, margin=margin)[0]


def compare(
    a: Any,
    b: Any,
    key: str = "final.knn_acc",
    margin: float | None = S.MARGIN,
    words: Mapping[str, str] | None = None,
) -> str:
    """The verdict string of one comparison standing alone (:func:`difference`).

    A comparison that belongs to a table of several must go through
    :func:`compare_table`, so that Holm's correction counts the whole table.

    Args:
        a, b: as in :func:`compare_table`.
        key, margin: as in :func:`compare_table`.
        words: optional replacements for the verdicts (``{"higher": "above"}``).

    Returns:
        ``"higher"``, ``"lower"``, ``"equivalent within ±1 point"``, ``"undecided"``
        or ``"one seed"`` (or their replacements).
    """
    v = difference(a, b, key=key, margin=margin).verdict
    return dict(words or {}).get(v, v)


def correctness(record: Mapping, key: str = "final.knn_correct"):
    """Per-image correctness stored in a results file (``final.knn_correct`` or
    ``final.linear_probe_correct``), decoded to a boolean numpy array in the order of
    the test set, or None for files written before it was stored."""
    value = lookup(record, key)
    return None if value in (MISSING, None) else S.decode_correct(value)


def plot_curves(
    ax,
    data: Mapping[Any, Mapping[str, Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = True,
    styles: Mapping[Any, dict] | None = None,
    labels: Mapping[Any, str] | None = None,
    test_size: int | None = None,
):
    """Draw the output of :func:`curves` on a matplotlib ``ax``: one marked line per
    group, labelled by ``labels[group]`` (default ``str(group)``), styled by
    ``styles[group]``. With ``test_size`` the y values are accuracies and get 95%
    binomial error bars (:func:`binomial_halfwidth`), so that noise is not read as an
    effect."""
    styles, labels = dict(styles or {}), dict(labels or {})
    for g, c in data.items():
        kw = {"marker": "o"}
        kw.update(styles.get(g, {}))
        if test_size:
            err = [
                binomial_halfwidth(y, test_size) if 0 <= y <= 1 else float("nan")
                for y in c["y"]
            ]
            ax.errorbar(
                c["x"], c["y"], yerr=err, capsize=3, label=labels.get(g, str(g)), **kw
            )
        else:
            ax.plot(c["x"], c["y"], label=labels.get(g, str(g)), **kw)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if data:
        ax.legend()
    ax.grid(True, alpha=0.3)
    return ax


def run_name(record: Mapping) -> str:
    """The run's name: the file stem of ``record["source"]``
    (``ch10/infonce_lr0.1.json`` -> ``infonce_lr0.1``), or the folder name for the CLI's
    own layout ``<name>/results.json``."""
    source = Path(str(lookup(record, "source", default="")))
    return (
        source.parent.name
        if source.stem == "results" and source.parent.name
        else source.stem
    )


def peak_lr(record: Mapping) -> float:
    r"""The learning rate the optimiser actually used at its peak: the CLI's ``lr`` is
    per 256 images (linear scaling rule), $\eta = \texttt{lr} \cdot B / 256$
    (``cl_lib.train``).

    Args:
        record: a results record; its ``peak_lr`` (written by the trainer) is used when
            present, else ``config.lr`` -- or, for a run with the default lr
            (``None``), the trainer's default for ``config.optimizer``.

    Returns:
        The peak learning rate.
    """
    if isinstance(record.get("peak_lr"), (int, float)):
        return float(record["peak_lr"])
    cfg = record["config"]
    lr = cfg.get("lr")
    if lr is None:
        from cl_lib.train import DEFAULT_LR  # the trainer's defaults (imports torch)

        lr = DEFAULT_LR[cfg.get("optimizer", "sgd")]
    return float(lr) * float(cfg["batch_size"]) / 256.0


def provenance(record: Mapping) -> str:
    """One line saying where a number came from: run, tier, hardware, torch, commit,
    date, wall time (the fields ``cl_lib.train`` and the campaign write; absent ones
    are left out). The tier is the grid's (``quick``, ``cpu-study``, ``full``) where
    the run was planned by it, else the trainer's profile; a CPU is given with its
    core count and, for campaign runs, the threads the run was allowed."""
    parts = [run_name(record)]
    tier = lookup(record, "grid.tier")
    profile = lookup(record, ["profile", "config.profile"])
    if tier not in (MISSING, None):
        parts.append(f"{tier} tier")
    elif profile not in (MISSING, None):
        parts.append(f"{profile} profile")
    hw = lookup(record, "hardware", default={})
    if isinstance(hw, Mapping) and hw:
        device = hw.get("gpu") or hw.get("cpu") or hw.get("device")
        count = hw.get("gpu_count") or 0
        if hw.get("gpu"):
            parts.append(f"{count} x {device}" if count > 1 else str(device))
        else:
            cpu = str(device)
            if hw.get("cpu_count"):
                cpu += f", {hw['cpu_count']} cores"
            threads = lookup(record, "campaign.omp_num_threads")
            if threads not in (MISSING, None):
                cpu += f", {threads} thread{'s' if str(threads) != '1' else ''}"
            parts.append(cpu)
    for title, key in (
        ("torch", ["torch_version"]),
        ("commit", ["library_commit", "commit"]),
        ("date", ["date_utc", "date"]),
    ):
        value = lookup(record, key)
        if value not in (MISSING, None):
            parts.append(f"{title} {str(value)[:10] if title != 'torch' else value}")
    if lookup(record, "library_dirty", default=False) is True:
        parts.append("uncommitted changes")
    wall = lookup(record, ["wall_time_s"])
    if isinstance(wall, (int, float)):
        parts.append(f"{wall / 60:.1f} min")
    return " | ".join(parts)


# ---------------------------------------------------------------------------- run and
# record What the trainer's results.json does not (yet) hold, but the real-image
# chapters plot: the embedding variance of Li & Pimentel-Alarcón 2024 (Fig. 2),
# singular-value spectra (dimensional collapse, Jing et al. 2022) and geometry *during*
# training. ``python -m cl_lib.experiments.results`` runs the trainer once, with the
# CLI's own flags and an epoch-end callback, and adds these under ``"extra"``.


FEWSHOT_SHOTS = (1, 5, 20)


def class_separation(h, labels, shots=FEWSHOT_SHOTS, trials: int = 10) -> dict:
    r"""Chapter 6's measures of how well features separate classes, on one set of
    features ``h`` (N, F) with ``labels`` (N,) (:mod:`cl_lib.experiments.theory`):

    - ``cdnv`` / ``directional_cdnv``: the mean over ordered class pairs of the CDNV
      (Galanti et al. 2022) and of the directional CDNV (Luthra et al. 2025);
    - ``ncc_error`` / ``fewshot_bound``: the ``m``-shot nearest-class-centre error
      (``trials`` draws of the shots) and its Chebyshev bound, one per ``m`` of
      ``shots``; ``fewshot_bound_limit``: the bound as $m\to\infty$;
    - per ordered class pair (row-major, diagonal left out): ``directional_cdnv_pairs``,
      ``pairwise_ncc_error`` (two-way, exact centres) and ``cantelli_bound``
      ($\tilde V/(\tilde V+1/4)$, a bound on that error).

    Shot counts a class is too small for (``m`` >= its size) are left out; with fewer
    than two classes, a class of one image or non-finite features the dict is empty.

    Returns:
        A dict of floats and lists (per-pair lists rounded to 6 digits).
    """
    import torch

    from cl_lib.experiments import theory as th

    h, labels = h.double().cpu(), labels.cpu()
    sizes = torch.bincount(labels)
    c, smallest = len(sizes), int(sizes.min())
    shots = [m for m in shots if m < smallest]  # a centre needs m, a test point 1
    if c < 2 or smallest < 2 or not torch.isfinite(h).all():
        return {}  # nothing to separate, or no spread to measure
    off = ~torch.eye(c, dtype=torch.bool)

    def pairs(m):
        return [round(float(v), 6) for v in m[off]]

    vdir = th.directional_cdnv(h, labels)
    return {
        "shots": list(shots),
        "cdnv": float(th.cdnv(h, labels)[off].mean()),
        "directional_cdnv": float(vdir[off].mean()),
        "ncc_error": [th.ncc_fewshot_error(h, labels, m, trials=trials) for m in shots],
        "fewshot_bound": [th.fewshot_error_bound(h, labels, m) for m in shots],
        "fewshot_bound_limit": th.fewshot_bound_terms(h, labels, None)["bound"],
        "directional_cdnv_pairs": pairs(vdir),
        "pairwise_ncc_error": pairs(th.pairwise_ncc_error(h, labels)),
        "cantelli_bound": pairs(th.pairwise_cantelli_bound(h, labels)),
    }


def separation_values(record: Mapping) -> dict[str, float]:
    r"""One run's :func:`class_separation` (``extra.final.class_separation``) as named
    numbers: ``cdnv``, ``directional_cdnv``, their ``ratio``, ``ncc_error_m<m>`` and
    ``bound_m<m>`` per shot count, ``bound_limit`` ($m\to\infty$), ``cantelli_mean``
    (mean over ordered class pairs), ``cantelli_over_error`` (median over pairs of
    bound / two-way error, the error floored at 0.001), ``pairs_cantelli_below_half``
    and ``pairs_dcdnv_below_1_16`` (counts of ordered pairs). Raises KeyError for a
    record without it (files written before it was recorded)."""
    import numpy as np

    sep = lookup(record, "extra.final.class_separation", default=None)
    if sep is None:
        raise KeyError(f"{run_name(record)}: no extra.final.class_separation")
    vdir = np.array(sep["directional_cdnv_pairs"])
    error, bound = np.array(sep["pairwise_ncc_error"]), np.array(sep["cantelli_bound"])
    out = {
        "cdnv": sep["cdnv"],
        "directional_cdnv": sep["directional_cdnv"],
        "ratio": sep["cdnv"] / sep["directional_cdnv"],
    }
    for m, e, b in zip(sep["shots"], sep["ncc_error"], sep["fewshot_bound"]):
        out[f"ncc_error_m{m}"], out[f"bound_m{m}"] = e, b
    out.update(
        bound_limit=sep["fewshot_bound_limit"],
        cantelli_mean=float(bound.mean()),
        cantelli_over_error=float(np.median(bound / np.maximum(error, 1e-3))),
        pairs_cantelli_below_half=int((bound < 0.5).sum()),
        pairs_dcdnv_below_1_16=int((vdir < 1 / 16).sum()),
    )
    return out


# chapter 6's rows: label -> (separation_values key, decimals)
SEPARATION_ROWS = {
    "mean CDNV": ("cdnv", 1),
    "mean directional CDNV": ("directional_cdnv", 2),
    "CDNV / directional CDNV": ("ratio", 1),
    "NCC error, 1 shot": ("ncc_error_m1", 3),
    "NCC error, 5 shots": ("ncc_error_m5", 3),
    "NCC error, 20 shots": ("ncc_error_m20", 3),
    "10-way bound, m -> inf": ("bound_limit", 2),
    "Cantelli bound, pair mean": ("cantelli_mean", 3),
    "pairs: Cantelli bound < 0.5": ("pairs_cantelli_below_half", 0),
    "pairs: dir. CDNV < 1/16": ("pairs_dcdnv_below_1_16", 0),
}


def separation_table(
    groups: Mapping[str, Sequence[Mapping]], rows: Mapping = SEPARATION_ROWS
) -> tuple[str, dict[str, dict[str, list[float]]]]:
    """Chapter 6's measures of several seed groups side by side.

    Args:
        groups: column label -> the records of one setting (its seeds).
        rows: row label -> (key of :func:`separation_values`, decimals).

    Returns:
        ``(text, values)``: a table of "mean ± sd" per cell (the mean alone for one
        seed), and ``{column: {key: [value per seed]}}``.
    """
    import statistics

    values = {}
    for col, recs in groups.items():
        per_seed = [separation_values(r) for r in recs]
        values[col] = {key: [v[key] for v in per_seed] for key, _ in rows.values()}

    def cell(v, digits):
        m = f"{statistics.fmean(v):.{digits}f}"
        return m if len(v) < 2 else f"{m} ± {statistics.stdev(v):.{digits}f}"

    width = max(map(len, rows)) + 2
    head = "".join(f"{c + f' (n={len(groups[c])})':>18}" for c in groups)
    lines = [" " * width + head]
    for label, (key, digits) in rows.items():
        cells = "".join(f"{cell(values[c][key], digits):>18}" for c in groups)
        lines.append(f"{label:<{width}}{cells}")
    return "\n".join(lines), values


def geometry_snapshot(
    model,
    config,
    max_points: int = 1000,
    views: bool = True,
    spectra: bool = False,
    state=None,
    classes: bool = False,
) -> dict:
    r"""Geometry of a model on a class-balanced subset of ``max_points`` test images of
    its config, computed by :func:`cl_lib.evaluate.heldout_metrics`:

    keys as :func:`~cl_lib.evaluate.heldout_metrics` names them: no suffix for the
    projections $z$, ``_features`` for the backbone features $h$.

    - ``embedding_variance_features`` / ``embedding_variance``:
      $\sum_k \operatorname{Var}(h_k)$ of $h$ and of $z$ (Li & Pimentel-Alarcón 2024);
      ``embedding_variance_sphere_features`` / ``embedding_variance_sphere``: the same
      for $h / \lVert h \rVert$ (and $z$), which is $1 - \lVert \bar u \rVert^2 \in
      [0, 1]$ and does not depend on the scale;
    - ``effective_rank_features`` / ``effective_rank`` (RankMe; 0 for a zero matrix);
    - with ``views``: ``uniformity`` of the (un-augmented) $z$ and ``alignment`` between
      two augmented views of the same images (Wang & Isola 2020, eqs. 4--5);
    - with ``spectra``: the singular values of the *centred* $h$ and $z$, largest first;
    - ``class_mean_collinearity_features`` / ``_z``: chapter 1's over-fusion diagnostic
      (:func:`~cl_lib.experiments.toy.class_mean_collinearity`: 1 when the class means
      lie on one line, $1/C$ for orthogonal means), and ``_centred_`` the same after
      subtracting the mean of the class means (features after a ReLU are
      non-negative: their uncentred means always share one direction);
    - ``conv_weight_norms``: $\lVert W_l \rVert_F$ of each convolution of the backbone
      (with BatchNorm after it, the step it takes is $\eta / \lVert W_l \rVert^2$).
    - with ``classes``: ``class_separation`` of the backbone features
      (:func:`class_separation`: chapter 6's CDNVs and few-shot errors and bounds).

    Args:
        model: a :class:`~cl_lib.models.ContrastiveModel`.
        config: its :class:`~cl_lib.train.TrainConfig`.
        max_points: held-out images used.
        views, spectra, classes: what to add (above).
        state: the :class:`~cl_lib.train.TrainState` of the run, whose test split and
            augmentation are used (no data set is loaded); None loads the test split.

    Returns:
        A dict of floats (lists for the spectra).
    """
    from cl_lib.data import balanced_subset, load_dataset
    from cl_lib.evaluate import embed_heldout, heldout_metrics
    from cl_lib.train import make_augment

    if state is not None:
        test_x, test_y, augment = state.test_x, state.test_y, state.augment
    else:
        test_x, test_y, _ = load_dataset(
            config.dataset,
            "test",
            subset=config.test_subset,
            root=config.data_root,
            cache_dir=config.cache_dir,
            seed=config.seed,
        )
        augment = make_augment(config, config.image_size or int(test_x.shape[-1]))
    # splits are stored sorted by class: a class-balanced subset, not the first images
    idx = balanced_subset(
        test_y.cpu(), min(max_points, test_x.shape[0]), seed=config.seed
    )
    test_x, test_y = test_x[idx], test_y.cpu()[idx]
    h, z, pair = embed_heldout(model, test_x, augment, config.seed, views=views)
    m = heldout_metrics(z, views=pair, features=h, spectra=spectra, wasserstein=False)
    # the names heldout_metrics gives: z without a suffix, h with "_features"
    keys = ("embedding_variance", "embedding_variance_sphere", "effective_rank")
    out = {k + s: m[k + s] for k in keys for s in ("_features", "")}
    out.update(_fusion_and_scale(model, h, z, test_y))
    if views:
        out.update(uniformity=m["uniformity"], alignment=m["alignment"])
    if spectra:
        out["singular_values_features"] = m["singular_values_features"]
        out["singular_values_z"] = m["singular_values_z"]
    if classes:
        out["class_separation"] = class_separation(h, test_y)
    return out


def _fusion_and_scale(model, h, z, labels) -> dict:
    """Chapter 1's over-fusion diagnostic (class-mean collinearity of h and z, plain
    and centred) and the scale of the convolution weights, which BatchNorm makes
    irrelevant to the function but not to the step ($\\eta / \\lVert w \\rVert^2$)."""
    import torch

    from cl_lib.experiments.toy import class_mean_collinearity

    out = {}
    for name, x in (("features", h), ("z", z)):
        out[f"class_mean_collinearity_{name}"] = class_mean_collinearity(x, labels)
        out[f"class_mean_collinearity_centred_{name}"] = class_mean_collinearity(
            x, labels, centred=True
        )
    out["conv_weight_norms"] = [
        float(mod.weight.detach().norm())
        for mod in model.backbone.modules()
        if isinstance(mod, torch.nn.Conv2d)
    ]
    return out


def retrieval_snapshot(model, state, per_class: int = 1, k: int = 5) -> dict:
    """Nearest training images of a few test images, by cosine similarity of the
    backbone features $h$: what a reader looks at to see what an encoder has learned.

    The queries are the same in every run on the same test split: ``per_class`` images
    of each class, drawn with a fixed seed (0), not the run's.

    Args:
        model: a :class:`~cl_lib.models.ContrastiveModel`.
        state: its :class:`~cl_lib.train.TrainState` (train and test splits in memory).
        per_class: queries per class.
        k: neighbours per query.

    Returns:
        ``{"query_index": [q], "query_label": [q], "neighbour_index": [q][k],
        "neighbour_label": [q][k], "cosine": [q][k]}``; indices into the run's test and
        training splits (``cl_lib.data.load_dataset`` with the run's config gives them
        back).
    """
    import torch

    from cl_lib.evaluate import extract_features

    test_y = state.test_y.cpu()
    gen = torch.Generator().manual_seed(0)
    queries = []
    for c in torch.unique(test_y).tolist():
        members = torch.nonzero(test_y == c).flatten()
        pick = torch.randperm(len(members), generator=gen)[:per_class]
        queries += members[pick].tolist()
    if state.final_features is not None:  # the final evaluation's, same weights
        bank, query = state.final_features
        query = query[torch.as_tensor(queries, device=query.device)]
    else:
        kw = dict(
            device=state.device,
            preprocess=state.augment.eval_transform,
            channels_last=state.channels_last,
            batch_size=state.config.eval_batch_size,
        )
        bank = extract_features(model.backbone, state.train_x, **kw)
        query = extract_features(model.backbone, state.test_x[queries], **kw)
    bank = torch.nn.functional.normalize(bank, dim=1)
    query = torch.nn.functional.normalize(query, dim=1)
    cosine, index = (query @ bank.T).topk(k, dim=1)
    train_y = state.train_y.cpu()
    return {
        "query_index": queries,
        "query_label": test_y[queries].tolist(),
        "neighbour_index": index.cpu().tolist(),
        "neighbour_label": train_y[index.cpu()].tolist(),
        "cosine": [[round(v, 4) for v in row] for row in cosine.cpu().tolist()],
    }


def retrieval_images(record: dict, root=None, cache_dir=None) -> dict:
    """The images of a run's :func:`retrieval_snapshot`, from the same splits the run
    trained and was tested on (the data set is read from ``CL_LIB_DATA`` or ``root``).

    Args:
        record: a results record with ``extra.retrieval``.
        root, cache_dir: as :func:`cl_lib.data.load_dataset` (default the run's).

    Returns:
        ``{"query": (q, C, H, W) uint8, "neighbours": (q, k, C, H, W) uint8,
        "classes": [names], **extra.retrieval}``.
    """
    import torch

    from cl_lib.data import load_splits

    cfg, ret = record["config"], record["extra"]["retrieval"]
    train_x, _, test_x, _, classes = load_splits(  # as the trainer drew them
        cfg["dataset"],
        cfg.get("subset"),
        cfg.get("test_subset"),
        root or cfg.get("data_root"),
        cache_dir or cfg.get("cache_dir"),
        cfg["seed"],
    )
    neighbours = train_x[torch.as_tensor(ret["neighbour_index"])]
    return {
        "query": test_x[torch.as_tensor(ret["query_index"])],
        "neighbours": neighbours,
        "classes": list(classes),
        **ret,
    }


def _diverged_record(cfg, err: Exception) -> dict:
    """The record of a run stopped by a non-finite loss: no accuracies, its error."""
    from cl_lib import train as T

    return {
        "config": T.config_dict(cfg),
        "profile": cfg.profile,
        "finished": False,
        "diverged": True,
        "error": str(err).split(";")[0],
        "final": {},
        "extra": {},
    }


def train_and_record(
    train_args: Sequence[str], save: str | Path, track_every: int = 0
) -> dict:
    """Run ``cl_lib.train`` once with its own CLI flags, then save its results dict plus
    ``"extra"``: ``extra.final`` (:func:`geometry_snapshot` with spectra, at the end),
    ``extra.retrieval`` (:func:`retrieval_snapshot`) and, with ``track_every=k``,
    ``extra.tracking`` (a snapshot every ``k`` epochs and at the last one, taken by an
    epoch-end callback of :func:`cl_lib.train.train`, on the data already in memory).
    A run that stops on a non-finite loss is saved too, with ``"diverged": true`` and
    no accuracies (a diverged run is a result of an lr sweep, not an error).

    Args:
        train_args: the flags of ``cl-train`` (``["--profile", "quick", "--lr", "1"]``).
        save: the results JSON file to write (atomically).
        track_every: snapshot period in epochs (0: no tracking).

    Returns:
        The saved record.
    """
    import time

    from cl_lib import train as T
    from cl_lib.io import write_json

    if track_every < 0:
        raise ValueError(f"track_every must be >= 0, got {track_every}")
    cfg = T.config_from_args(list(train_args))
    save = Path(save)
    t0, tracking, wall_before = time.time(), [], 0.0
    # With --out the run can be stopped and resumed (--resume): the snapshots
    # and the wall time so far are kept beside the trainer's checkpoint.
    sidecar = Path(cfg.out_dir) / "record_progress.json" if cfg.out_dir else None
    if sidecar is not None and cfg.resume and sidecar.is_file():
        saved = json.loads(sidecar.read_text())
        tracking, wall_before = saved["tracking"], saved["wall_time_s"]

    def track(epoch, model, state):
        if track_every and (epoch % track_every == 0 or epoch == cfg.epochs):
            snapshot = geometry_snapshot(model, cfg, max_points=500, state=state)
            knn = state.history[-1].get("knn_acc")  # with eval_every, else None
            tracking.append({"epoch": epoch, "knn_acc": knn, **snapshot})
        if sidecar is not None:
            wall = wall_before + time.time() - t0
            write_json({"tracking": tracking, "wall_time_s": wall}, sidecar)

    try:
        result = T.train(cfg, callbacks=[track] if track_every or sidecar else [])
        record = result.results
        model, state = result.model, result.state
        final = dict(views=False, spectra=True, state=state, classes=True)
        record["extra"] = {
            "final": geometry_snapshot(model, cfg, **final),
            "retrieval": retrieval_snapshot(model, state),
        }
        record["diverged"] = False
        last = tracking[-1] if tracking else {}
        if last.get("epoch") == cfg.epochs and last["knn_acc"] is None:
            last["knn_acc"] = record["final"].get("knn_acc")  # the final evaluation
    except T.NonFiniteLossError as err:
        record = _diverged_record(cfg, err)
    if tracking:  # an epoch tracked again after a resume: its last snapshot
        record["extra"]["tracking"] = list({t["epoch"]: t for t in tracking}.values())
    # training plus the extra measurements, over every process of a resumed run
    record["wall_time_s"] = wall_before + time.time() - t0
    track_flag = f" --track-every {track_every}" if track_every else ""
    flags = " ".join(shlex.quote(a) for a in train_args)
    record["command"] = (
        f"python -m cl_lib.experiments.results "
        f"{shlex.quote(str(save))}{track_flag} -- {flags}"
    )
    write_json(json.loads(json.dumps(record, default=str)), save)
    return record


def main(argv: Sequence[str] | None = None) -> dict:
    """
    ``python -m cl_lib.experiments.results SAVE.json [--track-every K] -- <cl_lib.train
    flags>``.
    """
    import argparse
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise ValueError(
            "usage: python -m cl_lib.experiments.results SAVE.json "
            "[--track-every K] -- <cl_lib.train flags>"
        )
    cut = argv.index("--")
    p = argparse.ArgumentParser(
        prog="python -m cl_lib.experiments.results",
        description="Run cl_lib.train and save its results plus geometry extras.",
    )
    p.add_argument("save", help="results JSON file to write")
    p.add_argument(
        "--track-every", type=int, default=0, help="geometry snapshot every K epochs"
    )
    args = p.parse_args(argv[:cut])
    return train_and_record(argv[cut + 1 :], args.save, args.track_every)


if __name__ == "__main__":
    main()
