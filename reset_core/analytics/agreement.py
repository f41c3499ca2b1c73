"""Agreement between judges, between judges and humans, and between humans.

Per aspect (``task``, ``instruction``, ``faithfulness``):

* judge vs judge, pairwise: Cohen's kappa on scores binned into ``n_bins`` equal bins,
  quadratic-weighted kappa on the same bins (scikit-learn ``cohen_kappa_score``), and
  Spearman and Kendall (tau-b) on the raw [0, 1] scores (scipy);
* all judges together: Krippendorff's alpha, interval and ordinal (``krippendorff``);
* judge vs human: the judge against the mean manual score reviewers gave (``overrides``
  events ``score`` with value ``{"aspect": ..., "score": ...}``), and against vetoes and
  forced picks (does the judge rank a vetoed candidate below another candidate of its
  example, a forced one at the top?);
* human vs human: the same statistics between reviewers who scored the same items.

Every figure is a :class:`Stat` with its n and a 95% percentile bootstrap interval
(``n_boot`` resamples of the items; the resampled statistics are vectorised numpy
versions of the same formulas, checked against the libraries in the tests). Degenerate
data (one judge, constant scores, nothing valid, a single item) gives ``value=None``
with a ``note`` saying why, never NaN.

Large databases: the paired scores are pivoted in SQL over a deterministic hash sample
of about ``cap`` candidates per aspect (default :data:`AGREEMENT_SAMPLE`), read from the
bucket-ordered ``analytics_judgments`` summary; the report says how many it used of how
many. Failed judgments are excluded and counted.

Review links: a heatmap cell opens the candidates two raters disagree on in Review
(``reset_core.review.links.disagreement_query``).

>>> r = pair_stats([0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.75, 1.0], n_boot=50)
>>> round(r["spearman"].value, 3), r["spearman"].n
(1.0, 4)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations

import krippendorff
import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from reset_core.analytics.summaries import (
    HUMAN,
    HUMAN_SCORES_SQL,
    UNDONE_SQL,
    missing_summary,
    sample_buckets,
)
from reset_core.aspects import ASPECT_COLS, check_aspect
from reset_core.store import one

AGREEMENT_SAMPLE = 2000
N_BOOT = 200
N_BINS = 5
#: Krippendorff's coincidence matrices are values², so finer scores are rounded to this grid
ALPHA_GRID = 0.05
PAIR_STATS = ("kappa", "qwk", "spearman", "kendall")
STAT_LABELS = {
    "kappa": "Cohen's kappa (binned)",
    "qwk": "quadratic-weighted kappa",
    "spearman": "Spearman rho",
    "kendall": "Kendall tau-b",
    "alpha_interval": "Krippendorff alpha (interval)",
    "alpha_ordinal": "Krippendorff alpha (ordinal)",
    "pick_agreement": "agrees with human veto/force",
}


@dataclass
class Stat:
    """One agreement figure: value (None when undefined), n items, 95% CI, why undefined."""

    name: str
    value: float | None
    n: int
    ci: tuple[float, float] | None = None
    note: str | None = None

    def label(self) -> str:
        if self.value is None:
            return f"n/a (n={self.n}): {self.note}"
        ci = f" [{self.ci[0]:.2f}, {self.ci[1]:.2f}]" if self.ci else ""
        return f"{self.value:.3f}{ci} (n={self.n})"


@dataclass
class AspectAgreement:
    """Everything the Agreement page shows for one aspect."""

    aspect: str
    judges: list[str]
    pairs: dict[tuple[str, str], dict[str, Stat]]
    alpha: dict[str, Stat]
    n_units: int  # candidates with at least one valid score in the sample
    n_sampled_from: int  # candidates with a judgment for this aspect, before sampling
    missing: dict
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- statistics
def _bins(x: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((np.asarray(x) * n_bins).astype(int), n_bins - 1)


def _undefined_reason(a: np.ndarray, b: np.ndarray) -> str | None:
    if len(a) == 0:
        return "no item has a valid score from both raters"
    if len(a) == 1:
        return "only one item scored by both raters: agreement needs at least two"
    if np.all(a == a[0]) and np.all(b == b[0]):
        return f"scores are constant (always {a[0]:g} and {b[0]:g}): agreement is undefined"
    return None


def _kappa_batch(ab: np.ndarray, bb: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Cohen's kappa of each row of (B, n) bin arrays, same formula as scikit-learn."""
    n_rows = ab.shape[0]
    flat = ab * k + bb + (np.arange(n_rows) * k * k)[:, None]
    cm = np.bincount(flat.ravel(), minlength=n_rows * k * k).reshape(n_rows, k, k).astype(float)
    total = cm.sum(axis=(1, 2))
    expected = cm.sum(axis=2)[:, :, None] * cm.sum(axis=1)[:, None, :] / total[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - (weights * cm).sum(axis=(1, 2)) / (weights * expected).sum(axis=(1, 2))


def _spearman_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra = stats.rankdata(a, axis=1)
    rb = stats.rankdata(b, axis=1)
    return _pearson_rows(ra, rb)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


#: above this many (a, b) value combinations the rank statistics resample raw arrays
_MAX_TABLE = 4096


def _tables(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """Contingency tables (B, ka, kb) of resampled discrete scores, or None if continuous."""
    va, ia = np.unique(a, return_inverse=True)
    vb, ib = np.unique(b, return_inverse=True)
    ka, kb, n_rows = len(va), len(vb), idx.shape[0]
    if ka * kb > _MAX_TABLE:
        return None
    flat = ia[idx] * kb + ib[idx] + (np.arange(n_rows) * ka * kb)[:, None]
    t = np.bincount(flat.ravel(), minlength=n_rows * ka * kb).reshape(n_rows, ka, kb)
    return t.astype(float)


def _spearman_tables(t: np.ndarray) -> np.ndarray:
    """Spearman's rho (midranks for ties) of each contingency table."""
    r, c = t.sum(axis=2), t.sum(axis=1)
    n = r.sum(axis=1, keepdims=True)
    mean = (n + 1) / 2
    ra = np.cumsum(r, axis=1) - r / 2 + 0.5 - mean  # centred midrank of each a value
    rb = np.cumsum(c, axis=1) - c / 2 + 0.5 - mean
    cov = (t * ra[:, :, None] * rb[:, None, :]).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt((r * ra**2).sum(axis=1) * (c * rb**2).sum(axis=1))


def _kendall_tables(t: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each contingency table: concordant minus discordant pairs."""
    # below_right[i, j] = sum of t[k, l] for k > i, l > j; below_left: k > i, l < j
    suffix = t[:, ::-1, ::-1].cumsum(1).cumsum(2)[:, ::-1, ::-1]
    below_right = np.zeros_like(t)
    below_right[:, :-1, :-1] = suffix[:, 1:, 1:]
    rows_below = np.zeros_like(t)
    rows_below[:, :-1, :] = t[:, ::-1, :].cumsum(1)[:, ::-1, :][:, 1:, :]
    below_left = np.zeros_like(t)
    below_left[:, :, 1:] = rows_below.cumsum(2)[:, :, :-1]
    concordant = (t * below_right).sum(axis=(1, 2))
    discordant = (t * below_left).sum(axis=(1, 2))
    n = t.sum(axis=(1, 2))
    n0 = n * (n - 1) / 2
    r, c = t.sum(axis=2), t.sum(axis=1)
    n1 = (r * (r - 1) / 2).sum(axis=1)
    n2 = (c * (c - 1) / 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (concordant - discordant) / np.sqrt((n0 - n1) * (n0 - n2))


def spearman_replicates(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of Spearman's rho (tables when discrete, else ranks)."""
    t = _tables(a, b, idx)
    return _spearman_tables(t) if t is not None else _spearman_batch(a[idx], b[idx])


def _rank_batches(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Bootstrap replicates of Spearman and Kendall: from tables when scores are discrete."""
    t = _tables(a, b, idx)
    if t is not None:
        return {"spearman": _spearman_tables(t), "kendall": _kendall_tables(t)}
    kendall = np.empty(idx.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, row in enumerate(idx):  # continuous scores: scipy per resample
            kendall[i] = stats.kendalltau(a[row], b[row]).statistic
    return {"spearman": _spearman_batch(a[idx], b[idx]), "kendall": kendall}


def _ci(reps: np.ndarray) -> tuple[float, float] | None:
    reps = reps[np.isfinite(reps)]
    if len(reps) < 10:
        return None
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return float(lo), float(hi)


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def pair_stats(a, b, n_bins: int = N_BINS, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Stat]:
    """Kappa (binned), quadratic-weighted kappa, Spearman and Kendall of two raters.

    ``a`` and ``b`` are paired [0, 1] scores (NaN pairs are dropped). Point estimates
    come from scikit-learn and scipy; intervals from ``n_boot`` bootstrap resamples.

    >>> pair_stats([0.5, 0.5], [0.5, 0.5])["qwk"].note
    'scores are constant (always 0.5 and 0.5): agreement is undefined'
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    reason = _undefined_reason(a, b)
    if reason:
        return {s: Stat(s, None, n, note=reason) for s in PAIR_STATS}
    ab, bb = _bins(a, n_bins), _bins(b, n_bins)
    labels = list(range(n_bins))
    out: dict[str, Stat] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant inputs: NaN, reported as a note below
        point = {
            "kappa": cohen_kappa_score(ab, bb, labels=labels),
            "qwk": cohen_kappa_score(ab, bb, labels=labels, weights="quadratic"),
            "spearman": stats.spearmanr(a, b).statistic,
            "kendall": stats.kendalltau(a, b).statistic,
        }
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    grid = np.arange(n_bins)
    reps = {
        "kappa": _kappa_batch(ab[idx], bb[idx], n_bins, 1.0 - np.eye(n_bins)),
        "qwk": _kappa_batch(ab[idx], bb[idx], n_bins, (grid[:, None] - grid[None, :]) ** 2),
        **_rank_batches(a, b, idx),
    }
    for s in PAIR_STATS:
        value = _finite(point[s])
        note = None
        if value is None:
            note = (
                "one rater's scores are constant: a rank correlation is undefined"
                if s in ("spearman", "kendall")
                else "all items fall in one bin for both raters: kappa is undefined"
            )
        out[s] = Stat(s, value, n, _ci(reps[s]) if value is not None else None, note)
    return out


def _alpha_domain(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values rounded to the alpha grid when there are more than 21 distinct ones."""
    values = np.unique(matrix[np.isfinite(matrix)])
    if len(values) > 21:
        matrix = np.round(matrix / ALPHA_GRID) * ALPHA_GRID
        values = np.unique(matrix[np.isfinite(matrix)])
    return matrix, values


def _alpha_batch(
    o_units: np.ndarray, weights: np.ndarray, values: np.ndarray, level: str
) -> np.ndarray:
    """Krippendorff's alpha per row of unit weights, from per-unit coincidence matrices."""
    v = len(values)
    o = (weights @ o_units.reshape(len(o_units), v * v)).reshape(-1, v, v)
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    if level == "interval":
        d2 = np.broadcast_to((values[:, None] - values[None, :]) ** 2, o.shape)
    else:  # ordinal: squared rank distance from the marginal counts
        cum = np.cumsum(n_c, axis=1)
        mid = cum - n_c / 2
        d2 = (mid[:, :, None] - mid[:, None, :]) ** 2
    d_o = (o * d2).sum(axis=(1, 2))
    d_e = (n_c[:, :, None] * n_c[:, None, :] * d2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - (n - 1) * d_o / d_e


def alpha_stats(matrix, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Stat]:
    """Krippendorff's alpha (interval and ordinal) of a units × raters score matrix.

    NaN = rater did not score that unit. Units with fewer than two scores carry no
    information and are dropped (n counts the units used).

    >>> m = [[0.0, 0.0], [0.5, 0.5], [1.0, 0.75]]
    >>> round(alpha_stats(m, n_boot=20)["alpha_interval"].value, 3)
    0.935
    """
    matrix = np.asarray(matrix, dtype=float)
    names = ("alpha_interval", "alpha_ordinal")
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        return {s: Stat(s, None, 0, note="only one rater: alpha needs at least two") for s in names}
    pairable = np.isfinite(matrix).sum(axis=1) >= 2
    matrix = matrix[pairable]
    n = len(matrix)
    if n == 0:
        return {s: Stat(s, None, 0, note="no item has valid scores from two raters") for s in names}
    if n == 1:
        return {
            s: Stat(s, None, 1, note="only one item scored by two raters: need at least two")
            for s in names
        }
    matrix, values = _alpha_domain(matrix)
    if len(values) < 2:
        return {
            s: Stat(s, None, n, note=f"every score is {values[0]:g}: alpha is undefined")
            for s in names
        }
    # per-unit coincidences: (counts counts^T - diag(counts)) / (m_u - 1)
    counts = np.stack([(matrix == v).sum(axis=1) for v in values], axis=1).astype(float)
    m_u = counts.sum(axis=1)
    o_units = counts[:, :, None] * counts[:, None, :]
    o_units[:, np.arange(len(values)), np.arange(len(values))] -= counts
    o_units /= (m_u - 1)[:, None, None]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
    out = {}
    for s, level in zip(names, ("interval", "ordinal"), strict=True):
        try:
            value = _finite(
                krippendorff.alpha(
                    reliability_data=matrix.T, value_domain=values, level_of_measurement=level
                )
            )
        except ValueError as e:  # the package refuses one-value domains and similar
            out[s] = Stat(s, None, n, note=str(e))
            continue
        note = None if value is not None else "no disagreement is possible: alpha is undefined"
        reps = _alpha_batch(o_units, weights, values, level)
        out[s] = Stat(s, value, n, _ci(reps) if value is not None else None, note)
    return out


def rate_stat(name: str, hits: int, n: int, n_boot: int = N_BOOT, seed: int = 0) -> Stat:
    """A share (e.g. judge sides with the human) with a bootstrap interval."""
    if n == 0:
        return Stat(name, None, 0, note="no reviewed items to compare with")
    p = hits / n
    reps = np.random.default_rng(seed).binomial(n, p, size=n_boot) / n
    return Stat(name, p, n, _ci(reps))


# ----------------------------------------------------------------------------- queries
def judges_for(con, aspect: str) -> list[str]:
    """Judges with at least one valid score for ``aspect``."""
    return [
        r[0]
        for r in con.execute(
            "SELECT judge_id FROM analytics_missing WHERE aspect = ? AND n_valid > 0 "
            "ORDER BY judge_id",
            [aspect],
        ).fetchall()
    ]


def paired_scores(
    con, aspect: str, judges: list[str], cap: int = AGREEMENT_SAMPLE
) -> tuple[list[str], np.ndarray, int]:
    """Pivot valid scores to candidates × judges (NaN = no valid score), sampled in SQL.

    Returns (candidate ids, matrix, number of candidates with this aspect before sampling).
    """
    check_aspect(aspect)
    # candidates with a valid score for the aspect: a cheap count on the per-candidate summary
    n_all = one(con, f"SELECT count({ASPECT_COLS[aspect]}) FROM analytics_candidates")[0]
    if not judges or n_all == 0:
        return [], np.empty((0, len(judges))), n_all
    k = sample_buckets(n_all, cap)
    cols = ", ".join("max(score) FILTER (WHERE judge_id = ?)" for _ in judges)
    rows = con.execute(
        f"SELECT candidate_id, {cols} FROM analytics_judgments "
        "WHERE aspect = ? AND bucket < ? AND score IS NOT NULL "
        "GROUP BY candidate_id ORDER BY candidate_id",
        [*judges, aspect, k],
    ).fetchall()
    ids = [r[0] for r in rows]
    matrix = np.array([[np.nan if v is None else v for v in r[1:]] for r in rows], dtype=float)
    return ids, matrix.reshape(len(rows), len(judges)), n_all


def judge_agreement(
    con, aspect: str, cap: int = AGREEMENT_SAMPLE, n_boot: int = N_BOOT, n_bins: int = N_BINS
) -> AspectAgreement:
    """Judge-vs-judge statistics for one aspect (needs a fresh ``analytics`` summary)."""
    judges = judges_for(con, aspect)
    ids, matrix, n_all = paired_scores(con, aspect, judges, cap)
    notes = []
    missing = missing_summary(con, aspect)
    if not judges:
        notes.append(f"No valid {aspect} scores yet.")
    elif len(judges) == 1:
        notes.append(
            f"Only one judge ({judges[0]}) scored {aspect}: judge-vs-judge agreement needs two."
        )
    if len(ids) < n_all:
        notes.append(
            f"Sampled {len(ids):,} of {n_all:,} candidates (deterministic hash sample, "
            f"cap {cap:,})."
        )
    pairs = {}
    for i, j in combinations(range(len(judges)), 2):
        pairs[(judges[i], judges[j])] = pair_stats(
            matrix[:, i], matrix[:, j], n_bins=n_bins, n_boot=n_boot
        )
    alpha = alpha_stats(matrix if len(judges) >= 2 else np.empty((0, 1)), n_boot=n_boot)
    return AspectAgreement(aspect, judges, pairs, alpha, len(ids), n_all, missing, notes)


def human_scores(con, aspect: str) -> list[tuple[str, str, float]]:
    """Each reviewer's latest manual score per candidate: (candidate, reviewer, score).

    Undone events are ignored; scores outside [0, 1] are not scores and are skipped.
    """
    check_aspect(aspect)
    return con.execute(
        "SELECT candidate_id, reviewer, score FROM analytics_manual WHERE aspect = ? "
        "ORDER BY candidate_id, reviewer",
        [aspect],
    ).fetchall()


def judge_vs_human(con, aspect: str, n_boot: int = N_BOOT) -> dict[str, dict[str, Stat]]:
    """Each judge against the mean manual score of the reviewers, per statistic."""
    rows = con.execute(
        f"""
        WITH h AS ({HUMAN_SCORES_SQL})
        SELECT j.judge_id, list(j.score ORDER BY j.candidate_id),
               list(h.score ORDER BY j.candidate_id)
        FROM analytics_reviewed j JOIN h USING (candidate_id)
        WHERE j.aspect = ? AND j.score IS NOT NULL
        GROUP BY j.judge_id ORDER BY j.judge_id
        """,
        [aspect, aspect],
    ).fetchall()
    return {judge: pair_stats(a, b, n_boot=n_boot) for judge, a, b in rows}


def human_vs_human(con, aspect: str, n_boot: int = N_BOOT) -> dict:
    """Reviewer pairs on the items both scored, and alpha across all reviewers."""
    rows = human_scores(con, aspect)
    reviewers = sorted({r[1] for r in rows})
    cands = sorted({r[0] for r in rows})
    ci = {c: i for i, c in enumerate(cands)}
    ri = {r: i for i, r in enumerate(reviewers)}
    m = np.full((len(cands), len(reviewers)), np.nan)
    for c, r, s in rows:
        m[ci[c], ri[r]] = s
    pairs = {
        (reviewers[i], reviewers[j]): pair_stats(m[:, i], m[:, j], n_boot=n_boot)
        for i, j in combinations(range(len(reviewers)), 2)
    }
    note = None
    if len(reviewers) < 2:
        note = (
            "No manual scores yet."
            if not reviewers
            else f"Only one reviewer ({reviewers[0]}) scored {aspect}: need two to compare."
        )
    alpha = alpha_stats(m if len(reviewers) >= 2 else np.empty((0, 1)), n_boot=n_boot)
    return {"reviewers": reviewers, "pairs": pairs, "alpha": alpha, "note": note}


def judge_vs_human_picks(con, n_boot: int = N_BOOT) -> dict[tuple[str, str], Stat]:
    """Judges against vetoes and forced picks, per (judge, aspect).

    A veto of candidate c says the human ranks c below the judges' choice; the judge
    sides with the human when it scored another candidate of the same example strictly
    higher than c. A forced pick says c is best; the judge sides with the human when
    no other candidate scored higher. Only events still in force count (the latest of
    veto/force/unveto/unforce per candidate, undone events ignored).
    """
    rows = con.execute(
        f"""
        WITH ev AS (
            SELECT example_id, candidate_id, action FROM overrides
            WHERE action IN ('veto', 'force', 'unveto', 'unforce') AND candidate_id IS NOT NULL
              AND event_id NOT IN ({UNDONE_SQL})
            QUALIFY row_number() OVER (PARTITION BY example_id, candidate_id
                                       ORDER BY created_at DESC, event_id DESC) = 1
        ), live AS (SELECT * FROM ev WHERE action IN ('veto', 'force')),
        js AS (
            SELECT example_id, candidate_id, judge_id, aspect, score FROM analytics_reviewed
            WHERE score IS NOT NULL AND example_id IN (SELECT example_id FROM live)
        ), cmp AS (
            SELECT l.action, s.judge_id, s.aspect, s.score AS own,
                   (SELECT max(o.score) FROM js o
                    WHERE o.example_id = s.example_id AND o.judge_id = s.judge_id
                      AND o.aspect = s.aspect AND o.candidate_id <> s.candidate_id) AS best_other
            FROM live l JOIN js s ON s.example_id = l.example_id
                                 AND s.candidate_id = l.candidate_id
        )
        SELECT judge_id, aspect, count(*),
               count(*) FILTER (WHERE (action = 'veto' AND best_other > own)
                                   OR (action = 'force' AND own >= best_other))
        FROM cmp WHERE best_other IS NOT NULL
        GROUP BY judge_id, aspect ORDER BY judge_id, aspect
        """
    ).fetchall()
    return {
        (judge, aspect): rate_stat("pick_agreement", int(hits), int(n), n_boot=n_boot)
        for judge, aspect, n, hits in rows
    }


def agreement_matrix(
    report: AspectAgreement, stat: str = "qwk", human: dict[str, dict[str, Stat]] | None = None
) -> tuple[list[str], list[list[Stat | None]]]:
    """Raters × raters matrix of one statistic (diagonal None) for the heatmap.

    ``human`` (from :func:`judge_vs_human`) adds a ``human`` row and column.
    """
    raters = list(report.judges) + ([HUMAN] if human else [])
    cells: list[list[Stat | None]] = [[None] * len(raters) for _ in raters]
    for (a, b), s in report.pairs.items():
        i, j = raters.index(a), raters.index(b)
        cells[i][j] = cells[j][i] = s[stat]
    for judge, s in (human or {}).items():
        if judge in raters:
            i, j = raters.index(judge), raters.index(HUMAN)
            cells[i][j] = cells[j][i] = s[stat]
    return raters, cells


# ----------------------------------------------------------------------------- panel vs panel
#: changed examples listed by :func:`compare_panels` (the rest are counted)
CHANGED_SHOWN = 20


@dataclass
class PanelComparison:
    """Two panels' picks over the same examples: how often they pick the same candidate.

    ``n_examples`` counts the examples where at least one panel picks something;
    ``n_same`` those where both pick exactly the same candidate(s), ``n_changed`` the
    rest (``n_same + n_changed = n_examples``), of which ``only_a`` / ``only_b`` are
    picked by one panel only (the other finds no rankable candidate there).
    ``changed``: up to :data:`CHANGED_SHOWN` changed examples (a pandas DataFrame:
    example_id, kind, instruction, pick_a, pick_b, the two picks' texts, and
    ``candidates``: every candidate id either panel picks there, for a Review link).
    """

    label_a: str
    label_b: str
    n_examples: int
    n_same: int
    n_changed: int
    only_a: int
    only_b: int
    changed: object  # pandas DataFrame

    @property
    def overlap(self) -> float | None:
        """Examples picked alike / examples either panel picks for; None when none."""
        return self.n_same / self.n_examples if self.n_examples else None


def compare_panels(
    con, cfg_a, cfg_b, label_a: str = "A", label_b: str = "B", shown: int = CHANGED_SHOWN
) -> PanelComparison:
    """Pick with ``cfg_a`` and with ``cfg_b`` (two ``SelectionConfig``s that differ in
    their panel) and compare the picks example by example, in SQL.

    Nothing is stored. The picks come from the scoring engine
    (:func:`reset_core.scoring.selection.judge_picks`), so they are exactly what
    saving either selection would pick.
    """
    from reset_core.scoring.selection import judge_picks

    con.register("_picks_a", judge_picks(con, cfg_a))
    con.register("_picks_b", judge_picks(con, cfg_b))
    try:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _panel_cmp AS
            WITH a AS (SELECT example_id, list(candidate_id ORDER BY candidate_id) AS picks
                       FROM _picks_a GROUP BY example_id),
                 b AS (SELECT example_id, list(candidate_id ORDER BY candidate_id) AS picks
                       FROM _picks_b GROUP BY example_id)
            SELECT example_id, a.picks AS picks_a, b.picks AS picks_b,
                   coalesce(a.picks = b.picks, false) AS same
            FROM a FULL JOIN b USING (example_id)
            """
        )
        n, same, only_a, only_b = one(
            con,
            "SELECT count(*), count(*) FILTER (WHERE same), "
            "count(*) FILTER (WHERE picks_b IS NULL), count(*) FILTER (WHERE picks_a IS NULL) "
            "FROM _panel_cmp",
        )
        changed = con.execute(
            """
            -- the shown rows first, then their texts (joining first would hash every
            -- example and candidate for 20 rows)
            WITH p AS (SELECT * FROM _panel_cmp WHERE NOT same ORDER BY example_id LIMIT ?)
            SELECT p.example_id, e.kind, e.instruction,
                   array_to_string(p.picks_a, ', ') AS pick_a,
                   array_to_string(p.picks_b, ', ') AS pick_b,
                   ca.text AS text_a, cb.text AS text_b,
                   list_distinct(list_concat(coalesce(p.picks_a, []), coalesce(p.picks_b, [])))
                       AS candidates
            FROM p JOIN examples e USING (example_id)
            LEFT JOIN candidates ca ON ca.candidate_id = p.picks_a[1]
            LEFT JOIN candidates cb ON cb.candidate_id = p.picks_b[1]
            ORDER BY p.example_id
            """,
            [shown],
        ).df()
    finally:
        con.execute("DROP TABLE IF EXISTS _panel_cmp")
        con.unregister("_picks_a")
        con.unregister("_picks_b")
    return PanelComparison(label_a, label_b, n, same, n - same, only_a, only_b, changed)
