r"""When is one setting better than another? The library's one verdict rule.

A setting (a loss, a learning rate, ...) is trained with several seeds and each run is
scored on the same test images. Two settings are compared through the **interval of
their difference**, never through the overlap of two separate intervals:

- across seeds (:func:`welch`, :func:`paired`): Student-$t$ intervals of the difference
  of the seed means, by Welch's test (seeds of the two settings independent) or the
  paired $t$ test (seed $s$ of one setting paired with seed $s$ of the other);
- for two single runs (:func:`paired_proportions`): the paired difference of two
  accuracies on the same test images, with an exact McNemar test. It describes *these
  two runs* only: with one seed per setting the training randomness is unmeasured, so
  it is reported, never given a verdict;
- :func:`contrast` -- Welch's interval of a contrast of several seed means, e.g.
  whether a difference changes between two conditions;
- :func:`holm` -- Holm's step-down correction over the p-values of one table;
- :func:`tost` -- equivalence within a margin $\pm m$ (two one-sided $t$ tests);
- :func:`verdict` / :func:`verdict_table` -- the rule: **"higher"** / **"lower"** when
  the difference is non-zero at level $\alpha = 0.05$ after Holm's correction over the
  comparisons of the table, **"equivalent within ±m"** when the TOST equivalence test
  passes (Holm-corrected too), otherwise **"undecided"**; a setting with one seed gets
  no verdict, only **"one seed"**. Each comparison comes back as a
  :class:`Difference` (difference, 95% interval, p, adjusted p, verdict), which
  prints as ``+2.2 [+1.0, +3.3] points``;
- :func:`encode_correct` / :func:`decode_correct` -- per-image correctness of a
  classifier as a short JSON-safe string (what results files store).

Accuracies are fractions in $[0, 1]$; a margin of one percentage point is ``0.01``.
Only ``numpy`` and ``scipy.stats`` are used.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as _st

__all__ = [
    "ALPHA",
    "HIGHER",
    "LOWER",
    "MARGIN",
    "ONE_SEED",
    "UNDECIDED",
    "Difference",
    "PairedProportions",
    "contrast",
    "decode_correct",
    "encode_correct",
    "equivalent_words",
    "holm",
    "paired",
    "paired_proportions",
    "tost",
    "verdict",
    "verdict_table",
    "welch",
]

ALPHA = 0.05  # two-sided level of every test: 95% intervals
MARGIN = 0.01  # equivalence margin: one percentage point of accuracy
HIGHER, LOWER, UNDECIDED, ONE_SEED = "higher", "lower", "undecided", "one seed"


def equivalent_words(margin: float, scale: float = 100.0, unit: str = "points") -> str:
    """The verdict string of an equivalence: ``"equivalent within ±1 point"``.

    Args:
        margin: the equivalence margin (accuracy fraction: 0.01 is one point).
        scale: factor from the margin to the printed unit (100: percentage points).
        unit: the unit's name (plural); ``"points"`` becomes ``"point"`` for 1.

    Returns:
        The string.
    """
    value = margin * scale
    text = f"{value:g}"
    if unit.endswith("s") and math.isclose(value, 1.0):
        unit = unit[:-1]
    return f"equivalent within ±{text} {unit}".rstrip()


@dataclass(frozen=True)
class Difference:
    """One comparison of setting ``a`` with setting ``b`` (``a - b``).

    Attributes:
        diff: difference of the means, ``mean(a) - mean(b)``.
        low, high: its ``level`` confidence interval (unadjusted); NaN with one seed.
        p: two-sided p-value of "no difference" (NaN with one seed).
        p_equiv: p-value of the TOST equivalence test at ``margin`` (NaN with one
            seed).
        p_adj, p_equiv_adj: the same after Holm's correction over the table (equal to
            ``p``/``p_equiv`` for a comparison alone).
        margin: the equivalence margin.
        n_a, n_b: seeds (or runs) on each side.
        df: degrees of freedom of the $t$ distribution used (NaN with one seed).
        method: ``"welch"``, ``"paired"``, ``"contrast"`` or ``"one seed"``.
        verdict: ``"higher"``, ``"lower"``, ``"equivalent within ±m ..."``,
            ``"undecided"`` or ``"one seed"``.
        level: confidence level of ``low``/``high``.
    """

    diff: float
    low: float
    high: float
    p: float
    p_equiv: float
    margin: float
    n_a: int
    n_b: int
    df: float
    method: str
    p_adj: float = math.nan
    p_equiv_adj: float = math.nan
    verdict: str = UNDECIDED
    level: float = 1 - ALPHA

    @property
    def decided(self) -> bool:
        """Whether the verdict says something (higher, lower or equivalent)."""
        return self.verdict not in (UNDECIDED, ONE_SEED)

    def interval(self, scale: float = 100.0, digits: int = 1, unit: str = "points"):
        """``"+2.2 [+1.0, +3.3] points"`` (``"+2.2 points (one seed)"`` without an
        interval).

        Args:
            scale: factor to the printed unit (100: accuracy fractions to points).
            digits: decimals.
            unit: appended after the numbers ("" for none).

        Returns:
            The string.
        """
        d = f"{scale * self.diff:+.{digits}f}"
        tail = f" {unit}" if unit else ""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{d}{tail} (one seed)"
        lo, hi = (f"{scale * v:+.{digits}f}" for v in (self.low, self.high))
        return f"{d} [{lo}, {hi}]{tail}"

    def __str__(self) -> str:
        if self.method == ONE_SEED:
            return f"{self.interval()}"
        return f"{self.interval()}, p_Holm = {self.p_adj:.3f}: {self.verdict}"


def _values(x: Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has non-finite values: {v.tolist()}")
    return v


def _one_seed(a: np.ndarray, b: np.ndarray, margin, method: str) -> Difference:
    nan = math.nan
    return Difference(
        diff=float(a.mean() - b.mean()),
        low=nan,
        high=nan,
        p=nan,
        p_equiv=nan,
        margin=margin,
        n_a=a.size,
        n_b=b.size,
        df=nan,
        method=ONE_SEED,
        p_adj=nan,
        p_equiv_adj=nan,
        verdict=ONE_SEED,
    )


def _t_difference(
    diff: float, se: float, df: float, margin: float | None, level: float
) -> tuple[float, float, float, float]:
    """Interval, two-sided p and TOST p of a difference with standard error ``se`` on
    ``df`` degrees of freedom (Student's $t$). A zero ``se`` (every seed equal) makes
    the test exact: p = 0 unless the difference is 0."""
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
        p_eq = math.nan if margin is None else (0.0 if abs(diff) < margin else 1.0)
        return diff, diff, p, p_eq
    q = float(_st.t.ppf(0.5 + level / 2, df))
    t = diff / se
    p = float(2 * _st.t.sf(abs(t), df))
    if margin is None:  # no equivalence test
        return diff - q * se, diff + q * se, p, math.nan
    # H0: diff <= -m (rejected for large t_lo) and H0: diff >= +m (small t_hi)
    p_lo = float(_st.t.sf((diff + margin) / se, df))
    p_hi = float(_st.t.cdf((diff - margin) / se, df))
    return diff - q * se, diff + q * se, p, max(p_lo, p_hi)


def welch(
    a: Sequence[float],
    b: Sequence[float],
    margin: float | None = MARGIN,
    level: float = 1 - ALPHA,
) -> Difference:
    r"""Welch's $t$ interval and test of ``mean(a) - mean(b)``, seeds independent.

    With $k_a, k_b$ seeds, sample variances $s_a^2, s_b^2$ and
    $v_a = s_a^2/k_a$, $v_b = s_b^2/k_b$:
    $$\Delta = \bar a - \bar b, \quad \mathrm{se} = \sqrt{v_a + v_b}, \quad
      \nu = \frac{(v_a + v_b)^2}{v_a^2/(k_a-1) + v_b^2/(k_b-1)},$$
    interval $\Delta \pm t_{\nu, 0.975}\,\mathrm{se}$, p-value of $\Delta = 0$ from
    $t = \Delta/\mathrm{se}$ (as ``scipy.stats.ttest_ind(a, b, equal_var=False)``), and
    the TOST p-value of $|\Delta| < m$ (:func:`tost`).

    Assumptions: each setting's seed results are independent draws from a normal
    distribution (their means are close to normal), with possibly different variances;
    seeds of the two settings are independent. The fixed test set is common to all runs,
    so its sampling does not enter: the comparison is about these test images, not about
    the population they were drawn from.

    Args:
        a, b: one number per seed (e.g. accuracies); one value on either side gives the
            "one seed" result (no interval, no verdict).
        margin: equivalence margin $m$ of the TOST p-value (None: no equivalence
            test, for a metric without an agreed margin).
        level: confidence level of the interval.

    Returns:
        A :class:`Difference` (``verdict`` for this comparison alone; see
        :func:`verdict_table` for a table).
    """
    a, b = _values(a, "a"), _values(b, "b")
    if a.size < 2 or b.size < 2:
        return _one_seed(a, b, margin, "welch")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se > 0:
        df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    else:
        df = float(a.size + b.size - 2)
    diff = float(a.mean() - b.mean())
    low, high, p, p_eq = _t_difference(diff, se, df, margin, level)
    d = Difference(diff, low, high, p, p_eq, margin, a.size, b.size, df, "welch")
    return _decide(replace(d, p_adj=p, p_equiv_adj=p_eq, level=level))


def contrast(
    groups: Sequence[Sequence[float]],
    weights: Sequence[float],
    margin: float | None = None,
    level: float = 1 - ALPHA,
) -> Difference:
    r"""Welch's $t$ interval and test of a contrast $\sum_i w_i \bar x_i$ of seed
    means, the seeds of every group independent.

    With group means $\bar x_i$ over $k_i$ seeds of sample variance $s_i^2$ and
    $v_i = w_i^2 s_i^2 / k_i$:
    $$C = \sum_i w_i \bar x_i, \quad \mathrm{se} = \sqrt{\textstyle\sum_i v_i},
      \quad \nu = \frac{(\sum_i v_i)^2}{\sum_i v_i^2/(k_i - 1)}$$
    (Satterthwaite's degrees of freedom). With weights $(1, -1)$ this is
    :func:`welch`. With $(1, -1, -1, 1)$ on groups $(a_1, b_1, a_2, b_2)$ it asks
    whether the difference $a - b$ changes between two conditions (an interaction):
    "does DHEL's advantage over SimCLR grow as the temperature falls?".

    Assumptions: those of :func:`welch`, for every group.

    Args:
        groups: one sequence of seed values per group.
        weights: one weight per group; they should sum to 0 (a comparison).
        margin: equivalence margin of the TOST p-value (None: no equivalence test).
        level: confidence level of the interval.

    Returns:
        A :class:`Difference` (``diff`` = $C$; ``n_a``/``n_b`` the fewest seeds of a
        group with a positive/negative weight); one seed in any group gives the
        "one seed" result.
    """
    values = [_values(g, f"group {i}") for i, g in enumerate(groups)]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(values),):
        raise ValueError(f"need one weight per group, got {len(w)} for {len(values)}")
    if not math.isclose(float(w.sum()), 0.0, abs_tol=1e-12) or not np.any(w):
        raise ValueError(f"the weights of a contrast sum to 0, got {w.tolist()}")
    diff = float(sum(wi * v.mean() for wi, v in zip(w, values)))
    n_pos = min(v.size for wi, v in zip(w, values) if wi > 0)
    n_neg = min(v.size for wi, v in zip(w, values) if wi < 0)
    if min(v.size for wi, v in zip(w, values) if wi != 0) < 2:
        one = _one_seed(np.array([diff]), np.array([0.0]), margin, "contrast")
        return replace(one, n_a=n_pos, n_b=n_neg)
    var = [wi**2 * v.var(ddof=1) / v.size for wi, v in zip(w, values)]
    se = math.sqrt(sum(var))
    if se > 0:
        df = sum(var) ** 2 / sum(
            vi**2 / (v.size - 1) for vi, v in zip(var, values) if vi > 0
        )
    else:
        df = float(sum(v.size for v in values) - len(values))
    low, high, p, p_eq = _t_difference(diff, se, df, margin, level)
    d = Difference(diff, low, high, p, p_eq, margin, n_pos, n_neg, df, "contrast")
    return _decide(replace(d, p_adj=p, p_equiv_adj=p_eq, level=level))


def paired(
    a: Sequence[float],
    b: Sequence[float],
    margin: float | None = MARGIN,
    level: float = 1 - ALPHA,
) -> Difference:
    r"""Paired $t$ interval and test of the mean of ``a[i] - b[i]`` (seed $i$ of each).

    With $d_i = a_i - b_i$ over $k$ pairs: $\Delta = \bar d$,
    $\mathrm{se} = s_d/\sqrt k$, $k-1$ degrees of freedom (as
    ``scipy.stats.ttest_rel``); interval $\Delta \pm t_{k-1, 0.975}\,\mathrm{se}$.

    When pairing is valid: only when seed $i$ of both settings shares the randomness
    that is not the object of the comparison -- the same initial weights, the same order
    of training images and the same augmentation draws (in ``cl_lib.train`` the seed
    fixes all three when the two settings use the same model, data and batch size) --
    and the pairs are fixed before looking at the results. Then the seed's share of the
    noise cancels in $d_i$. Settings whose runs consume randomness differently (another
    architecture, batch size or number of views) are not paired by their seed: use
    :func:`welch`. Assumes the $d_i$ are independent normal draws.

    Args:
        a, b: one number per seed, in the same seed order, equal lengths.
        margin: equivalence margin $m$ of the TOST p-value (None: no equivalence
            test, for a metric without an agreed margin).
        level: confidence level of the interval.

    Returns:
        A :class:`Difference` with ``method="paired"``.
    """
    a, b = _values(a, "a"), _values(b, "b")
    if a.size != b.size:
        raise ValueError(
            f"paired needs as many values on each side: {a.size}, {b.size}"
        )
    if a.size < 2:
        return _one_seed(a, b, margin, "paired")
    d = a - b
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    diff = float(d.mean())
    df = float(d.size - 1)
    low, high, p, p_eq = _t_difference(diff, se, df, margin, level)
    out = Difference(diff, low, high, p, p_eq, margin, a.size, b.size, df, "paired")
    return _decide(replace(out, p_adj=p, p_equiv_adj=p_eq, level=level))


def tost(
    a: Sequence[float],
    b: Sequence[float],
    margin: float = MARGIN,
    paired_seeds: bool = False,
) -> float:
    r"""Equivalence of two settings within $\pm m$: two one-sided $t$ tests (TOST).

    Tests $H_0^-: \Delta \le -m$ against $\Delta > -m$ and $H_0^+: \Delta \ge m$ against
    $\Delta < m$, each one-sided at level $\alpha$, with the standard error and degrees
    of freedom of :func:`welch` (or :func:`paired`). The p-value of equivalence is the
    larger of the two; equivalence is shown at level $\alpha$ when it is below
    $\alpha$ -- the same as the $1-2\alpha$ (90%) interval of $\Delta$ lying inside
    $(-m, m)$. "Not shown different" is not equivalence: a small sample leaves the
    TOST p-value large.

    Args:
        a, b: one number per seed.
        margin: $m > 0$, in the units of ``a`` (0.01 is one point of accuracy).
        paired_seeds: pair seed $i$ with seed $i$ (:func:`paired`).

    Returns:
        The TOST p-value (NaN with one seed on either side).
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    fn = paired if paired_seeds else welch
    return fn(a, b, margin=margin).p_equiv


def holm(pvalues: Sequence[float]) -> list[float]:
    r"""Holm's step-down adjusted p-values (Holm 1979), in the input order.

    Sort the $n$ finite p-values, $p_{(1)} \le \dots \le p_{(n)}$; the adjusted values
    are $\tilde p_{(j)} = \max_{i \le j} \min\{1, (n - i + 1)\, p_{(i)}\}$. Rejecting
    where $\tilde p < \alpha$ keeps the probability of any false "different" in the
    table at most $\alpha$, whatever the dependence between the tests. NaN entries (one
    seed: no test) are not counted in $n$ and stay NaN.

    Args:
        pvalues: the raw p-values of one table.

    Returns:
        The adjusted p-values, same order and length.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size == 0:
        return out.tolist()
    if np.any((p[idx] < 0) | (p[idx] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = idx[np.argsort(p[idx], kind="stable")]
    n = order.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (n - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _decide(d: Difference, alpha: float = ALPHA) -> Difference:
    if d.method == ONE_SEED:
        return replace(d, verdict=ONE_SEED)
    if d.p_adj < alpha:
        word = HIGHER if d.diff > 0 else LOWER
    elif d.p_equiv_adj < alpha:
        word = equivalent_words(d.margin)
    else:
        word = UNDECIDED
    return replace(d, verdict=word)


def verdict(
    a: Sequence[float],
    b: Sequence[float],
    margin: float | None = MARGIN,
    paired_seeds: bool = False,
) -> Difference:
    """The rule for one comparison standing alone (a table of one): see
    :func:`verdict_table`.

    Args:
        a, b: one number per seed of each setting.
        margin: equivalence margin (0.01: one point).
        paired_seeds: :func:`paired` instead of :func:`welch`.

    Returns:
        A :class:`Difference`.
    """
    return verdict_table({0: (a, b)}, margin=margin, paired_seeds=paired_seeds)[0]


def verdict_table(
    comparisons: Mapping[Hashable, tuple[Sequence[float], Sequence[float]]],
    margin: float | None = MARGIN,
    paired_seeds: bool = False,
    alpha: float = ALPHA,
) -> dict[Hashable, Difference]:
    r"""The book's verdict on every comparison of one table, with Holm's correction.

    For each ``label: (a, b)`` (seed values of two settings), :func:`welch` (or
    :func:`paired`) gives the difference ``mean(a) - mean(b)``, its 95% interval, the
    p-value of "no difference" and the TOST p-value of "equivalent within
    $\pm m$". Over the comparisons that have at least two seeds on each side, both sets
    of p-values are Holm-corrected (:func:`holm`, separately), and

    - **"higher"** / **"lower"**: the Holm-adjusted p of "no difference" is below
      $\alpha$ (the difference's interval excludes 0 after the correction), by the sign
      of the difference;
    - **"equivalent within ±m points"**: otherwise, when the Holm-adjusted TOST p is
      below $\alpha$;
    - **"undecided"**: neither;
    - **"one seed"**: one seed on either side -- no test, no verdict; it does not count
      in the correction.

    Assumptions: those of :func:`welch` (or :func:`paired`); a table is the family of
    comparisons read together, and the printed intervals are the unadjusted 95% ones
    (the verdict uses the adjusted p).

    Args:
        comparisons: label -> (values of a, values of b).
        margin: equivalence margin $m$ (0.01: one point of accuracy); None for no
            equivalence test (a metric without an agreed margin: then the verdicts are
            higher, lower or undecided).
        paired_seeds: pair seeds (valid only as :func:`paired` says).
        alpha: level of the tests.

    Returns:
        label -> :class:`Difference`, in the input order.
    """
    fn = paired if paired_seeds else welch
    raw = {k: fn(a, b, margin=margin) for k, (a, b) in comparisons.items()}
    return decide_table(raw, alpha)


def decide_table(
    differences: Mapping[Hashable, Difference], alpha: float = ALPHA
) -> dict[Hashable, Difference]:
    """The verdicts of :func:`verdict_table` for differences already computed (e.g.
    several results of :func:`contrast` read as one table): both sets of p-values are
    Holm-corrected over the table, then each difference is decided.

    Args:
        differences: label -> :class:`Difference` (its raw ``p`` and ``p_equiv``).
        alpha: level of the tests.

    Returns:
        label -> :class:`Difference` with ``p_adj``, ``p_equiv_adj`` and ``verdict``,
        in the input order.
    """
    keys = list(differences)
    p_adj = holm([differences[k].p for k in keys])
    q_adj = holm([differences[k].p_equiv for k in keys])
    return {
        k: _decide(replace(differences[k], p_adj=p, p_equiv_adj=q), alpha)
        for k, p, q in zip(keys, p_adj, q_adj)
    }


@dataclass(frozen=True)
class PairedProportions:
    """Two classifiers scored on the same ``n`` test images (``a - b``).

    Attributes:
        diff: accuracy of ``a`` minus accuracy of ``b``.
        low, high: its Wald interval for paired proportions.
        p: exact two-sided McNemar p-value.
        only_a, only_b: images that only ``a`` / only ``b`` gets right.
        n: test images.
    """

    diff: float
    low: float
    high: float
    p: float
    only_a: int
    only_b: int
    n: int

    def interval(self, scale: float = 100.0, digits: int = 1, unit: str = "points"):
        """``"+1.2 [+0.4, +2.0] points"``."""
        lo, hi = (f"{scale * v:+.{digits}f}" for v in (self.low, self.high))
        tail = f" {unit}" if unit else ""
        return f"{scale * self.diff:+.{digits}f} [{lo}, {hi}]{tail}"


def paired_proportions(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    level: float = 1 - ALPHA,
) -> PairedProportions:
    r"""Paired difference of two accuracies on the same test images, with McNemar.

    With $n_{10}$ images right for ``a`` only and $n_{01}$ right for ``b`` only, out of
    $n$: $\Delta = (n_{10} - n_{01})/n$, standard error
    $\sqrt{n_{10} + n_{01} - (n_{10} - n_{01})^2/n}\,/\,n$, Wald interval
    $\Delta \pm z_{0.975}\,\mathrm{se}$; exact McNemar p-value: the two-sided binomial
    test of $n_{10}$ successes in $n_{10} + n_{01}$ trials at $1/2$
    (``scipy.stats.binomtest``).

    What it measures: whether *these two trained networks* differ on *this* test set
    (images are the unit of sampling; the images are assumed exchangeable). It says
    nothing about the training randomness, so one run per setting gets this number as
    a report, never a verdict on the settings.

    Args:
        correct_a, correct_b: per-image correctness (bool arrays of equal length), e.g.
            from :func:`decode_correct`.
        level: confidence level of the interval.

    Returns:
        A :class:`PairedProportions`.
    """
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if a.size != b.size or a.size == 0:
        raise ValueError(f"need two equal, non-empty vectors, got {a.size}, {b.size}")
    n = a.size
    n10 = int(np.sum(a & ~b))
    n01 = int(np.sum(~a & b))
    diff = (n10 - n01) / n
    se = math.sqrt(max(n10 + n01 - (n10 - n01) ** 2 / n, 0.0)) / n
    z = float(_st.norm.ppf(0.5 + level / 2))
    p = 1.0 if n10 + n01 == 0 else float(_st.binomtest(n10, n10 + n01, 0.5).pvalue)
    return PairedProportions(diff, diff - z * se, diff + z * se, p, n10, n01, n)


def encode_correct(correct: Sequence[bool] | np.ndarray) -> str:
    """Per-image correctness as a compact string: ``"<n>:<base64>"``.

    Format: ``n`` (decimal) is the number of images; after the colon, the standard
    base64 (RFC 4648, with padding) of ``numpy.packbits(correct, bitorder="big")``:
    image ``i`` is bit ``7 - i % 8`` of byte ``i // 8`` (1 = correct), the last byte
    padded with zero bits. 10,000 images take 1,672 characters.

    Args:
        correct: a 1-D boolean (or 0/1) sequence, in the order of the test set.

    Returns:
        The string.
    """
    bits = np.asarray(correct).ravel()
    if bits.size and not np.all((bits == 0) | (bits == 1)):
        raise ValueError("correct must hold booleans (or 0/1)")
    packed = np.packbits(bits.astype(bool), bitorder="big")
    return f"{bits.size}:{base64.b64encode(packed.tobytes()).decode('ascii')}"


def decode_correct(text: str) -> np.ndarray:
    """Inverse of :func:`encode_correct`.

    Args:
        text: ``"<n>:<base64>"``.

    Returns:
        A boolean array of length ``n``.
    """
    head, sep, body = str(text).partition(":")
    if not sep or not head.isdigit():
        raise ValueError(f"not an encoded correctness string: {str(text)[:40]!r}")
    n = int(head)
    raw = np.frombuffer(base64.b64decode(body, validate=True), dtype=np.uint8)
    if raw.size != (n + 7) // 8:
        raise ValueError(f"{raw.size} bytes cannot hold exactly {n} images")
    return np.unpackbits(raw, count=n, bitorder="big").astype(bool)
