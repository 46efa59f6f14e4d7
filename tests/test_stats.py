"""The verdict rule (cl_lib.stats): Welch and paired intervals of a difference, TOST,
Holm, the verdict of a table, McNemar on two runs, per-image correctness strings."""

import math

import numpy as np
import pytest
from scipy import stats as st

from cl_lib import stats as S


def draws(mean, sd=0.005, k=5, seed=0):
    return mean + sd * np.random.default_rng(seed).standard_normal(k)


def test_planted_two_point_effect_with_five_seeds_is_found():
    a, b = draws(0.42, seed=1), draws(0.40, seed=2)
    d = S.verdict(a, b)
    assert d.verdict == S.HIGHER and d.low > 0 and d.high > d.diff > d.low
    assert S.verdict(b, a).verdict == S.LOWER
    assert abs(d.diff - (a.mean() - b.mean())) < 1e-15
    assert d.n_a == d.n_b == 5 and d.method == "welch"


def test_one_distribution_is_equivalent_at_a_wide_margin_undecided_at_a_tiny_one():
    a, b = draws(0.40, seed=3), draws(0.40, seed=4)
    assert S.verdict(a, b).p > 0.05  # not told apart
    wide, tiny = S.verdict(a, b, margin=0.02), S.verdict(a, b, margin=0.001)
    assert wide.verdict == S.equivalent_words(0.02) == "equivalent within ±2 points"
    assert tiny.verdict == S.UNDECIDED
    assert S.equivalent_words(0.01) == "equivalent within ±1 point"


def test_holm_adjusted_values_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert np.allclose(S.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert S.holm([0.2]) == [0.2]
    out = S.holm([0.01, float("nan"), 0.5])  # NaN (one seed) does not count
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == 0.5
    assert np.allclose(S.holm([0.3, 0.4]), [0.6, 0.6])  # monotone in rank
    assert S.holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1
    with pytest.raises(ValueError):
        S.holm([1.5])


def test_holm_changes_a_verdict_in_a_table():
    b = np.array([0.40, 0.41, 0.42])
    a = b + 0.0245  # Welch t = 3.0 on 4 df: p about 0.04
    alone = S.verdict(a, b)
    assert 0.01 < alone.p < 0.05 and alone.verdict == S.HIGHER
    table = {"effect": (a, b)}
    table.update({f"null{i}": (b, b + 0.001 * (i + 1)) for i in range(3)})
    out = S.verdict_table(table)
    assert out["effect"].p == alone.p and out["effect"].p_adj > 0.05
    assert out["effect"].verdict == S.UNDECIDED
    # a strong effect survives the same table
    table["effect"] = (b + 0.1, b)
    assert S.verdict_table(table)["effect"].verdict == S.HIGHER


def test_decide_table_applies_holm_to_contrasts_read_together():
    b = np.array([0.40, 0.41, 0.42])
    effect = S.contrast([b + 0.0245, b], [1, -1])  # decided standing alone
    nulls = [S.contrast([b, b + 0.001 * (i + 1)], [1, -1]) for i in range(3)]
    assert effect.verdict == S.HIGHER
    out = S.decide_table({"effect": effect, **dict(enumerate(nulls))})
    assert out["effect"].p == effect.p and out["effect"].verdict == S.UNDECIDED
    # the same rule as verdict_table on the raw values
    table = {"effect": (b + 0.0245, b)}
    table.update({i: (b, b + 0.001 * (i + 1)) for i in range(3)})
    want = S.verdict_table(table, margin=None)
    assert [d.p_adj for d in out.values()] == [d.p_adj for d in want.values()]


def test_one_seed_never_gets_a_verdict():
    for a, b in (([0.9], [0.1, 0.11, 0.12]), ([0.1, 0.2], [0.5]), ([0.5], [0.5])):
        d = S.verdict(a, b)
        assert d.verdict == S.ONE_SEED and not d.decided
        assert math.isnan(d.p) and math.isnan(d.low)
        assert d.interval() == f"{100 * d.diff:+.1f} points (one seed)"
    # and it does not enter Holm's count
    b = np.array([0.40, 0.41, 0.42])
    table = {"effect": (b + 0.0245, b), "single": ([0.9], b)}
    out = S.verdict_table(table)
    assert out["effect"].verdict == S.HIGHER and out["single"].verdict == S.ONE_SEED
    with pytest.raises(ValueError):
        S.paired([0.1, 0.2], [0.1])


def test_welch_matches_scipy_and_a_hand_computation():
    a = np.array([0.419, 0.425, 0.430])
    b = np.array([0.397, 0.401, 0.406, 0.399])
    d = S.welch(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    half = st.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert d.df == pytest.approx(df, rel=1e-12)
    assert d.high - d.diff == pytest.approx(half, rel=1e-12)
    # TOST: the larger of two one-sided Welch tests at the shifted means
    m = 0.03
    lo = st.ttest_ind(a + m, b, equal_var=False, alternative="greater").pvalue
    hi = st.ttest_ind(a - m, b, equal_var=False, alternative="less").pvalue
    assert S.tost(a, b, margin=m) == pytest.approx(max(lo, hi), rel=1e-9)
    with pytest.raises(ValueError):
        S.tost(a, b, margin=0)


def test_paired_matches_scipy():
    a = np.array([0.352, 0.347, 0.357, 0.350, 0.349])
    b = np.array([0.340, 0.339, 0.351, 0.341, 0.342])
    d = S.paired(a, b)
    ref = st.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert d.method == "paired" and d.df == 4
    assert d.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert S.verdict_table({"x": (a, b)}, paired_seeds=True)["x"].verdict == S.HIGHER


def test_no_margin_means_no_equivalence_verdict():
    a, b = draws(0.40, seed=3), draws(0.40, seed=4)
    d = S.verdict(a, b, margin=None)
    assert math.isnan(d.p_equiv) and d.verdict == S.UNDECIDED
    assert S.verdict(a + 0.05, b, margin=None).verdict == S.HIGHER
    assert S.welch([1.0, 1.0], [1.0, 1.0], margin=None).verdict == S.UNDECIDED


def test_equal_seeds_give_an_exact_answer():
    same = S.welch([0.5, 0.5], [0.5, 0.5])
    assert same.p == 1.0 and same.verdict.startswith("equivalent")
    apart = S.welch([0.6, 0.6], [0.5, 0.5])
    assert apart.p == 0.0 and apart.verdict == S.HIGHER


def test_interval_string():
    d = S.Difference(0.022, 0.0104, 0.0331, 0.007, 0.9, 0.01, 3, 3, 3.4, "welch")
    assert d.interval() == "+2.2 [+1.0, +3.3] points"
    assert d.interval(digits=2, unit="") == "+2.20 [+1.04, +3.31]"


def test_paired_proportions_and_mcnemar():
    # 100 images: both right on 50, only a on 15, only b on 5, both wrong on 30
    a = np.array([1] * 50 + [1] * 15 + [0] * 5 + [0] * 30, dtype=bool)
    b = np.array([1] * 50 + [0] * 15 + [1] * 5 + [0] * 30, dtype=bool)
    r = S.paired_proportions(a, b)
    assert (r.only_a, r.only_b, r.n) == (15, 5, 100)
    assert r.diff == pytest.approx(a.mean() - b.mean())
    se = math.sqrt(15 + 5 - 10**2 / 100) / 100
    assert r.high - r.diff == pytest.approx(st.norm.ppf(0.975) * se)
    assert r.p == pytest.approx(st.binomtest(15, 20, 0.5).pvalue)
    assert S.paired_proportions(a, a).p == 1.0
    with pytest.raises(ValueError):
        S.paired_proportions(a, b[:-1])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 10_000])
def test_encode_decode_round_trip(n):
    bits = np.random.default_rng(n).random(n) < 0.4
    text = S.encode_correct(bits)
    assert text.startswith(f"{n}:")
    back = S.decode_correct(text)
    assert back.dtype == bool and np.array_equal(back, bits)
    if n == 10_000:
        assert len(text) == len("10000:") + 1668


def test_decode_rejects_bad_strings():
    for bad in ("", "abc", "9:AA==", "x:AA=="):
        with pytest.raises(ValueError):
            S.decode_correct(bad)
    with pytest.raises(ValueError):
        S.encode_correct([0, 2, 1])


def test_contrast_with_weights_one_minus_one_is_welch():
    a, b = [0.41, 0.43, 0.42, 0.44], [0.40, 0.39, 0.42]
    c, w = S.contrast([a, b], [1, -1], margin=0.01), S.welch(a, b)
    for field in ("diff", "low", "high", "p", "p_equiv", "df"):
        assert math.isclose(getattr(c, field), getattr(w, field), rel_tol=1e-12)
    assert c.verdict == w.verdict and c.method == "contrast"


def test_contrast_finds_a_planted_interaction_and_not_a_missing_one():
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.004, 5)  # noqa: E731
    # a - b is +3 points at condition 1 and 0 at condition 2
    grow = S.contrast(
        [0.45 + noise(), 0.42 + noise(), 0.40 + noise(), 0.40 + noise()], [1, -1, -1, 1]
    )
    assert grow.verdict == S.HIGHER and grow.low > 0
    same = S.contrast(
        [0.45 + noise(), 0.42 + noise(), 0.43 + noise(), 0.40 + noise()], [1, -1, -1, 1]
    )
    assert same.verdict == S.UNDECIDED and same.low < 0 < same.high


def test_contrast_one_seed_and_bad_weights():
    one = S.contrast([[0.4], [0.3, 0.31], [0.3, 0.32], [0.3, 0.33]], [1, -1, -1, 1])
    assert one.verdict == S.ONE_SEED and math.isnan(one.low)
    assert math.isclose(one.diff, 0.4 - 0.305 - 0.31 + 0.315)
    with pytest.raises(ValueError, match="sum to 0"):
        S.contrast([[0.1, 0.2], [0.1, 0.3]], [1, 1])
    with pytest.raises(ValueError, match="one weight per group"):
        S.contrast([[0.1, 0.2], [0.1, 0.3]], [1, -1, 0])
