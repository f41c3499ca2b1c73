"""Judge length bias: does a judge score longer answers higher, per aspect?

For each (judge, aspect): Spearman's rho between the valid score and the answer length
in words with a bootstrap interval, and the mean score per length decile for the chart.
Computed over a deterministic hash sample of about ``cap`` candidates (bucket-ordered
summaries, so the sample reads only the first row groups).

>>> from reset_core.store import connect
>>> from reset_core.analytics.summaries import ensure_fresh
>>> con = connect(":memory:"); _ = ensure_fresh(con)
>>> length_bias(con)
[]
"""

from __future__ import annotations

import numpy as np

from reset_core.analytics.agreement import N_BOOT, Stat, _ci, spearman_replicates
from reset_core.analytics.summaries import sample_buckets
from reset_core.store import one

BIAS_SAMPLE = 5000


def length_bias(con, cap: int = BIAS_SAMPLE, n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """One row per (judge, aspect): rho (a :class:`Stat`), deciles [(mean words, mean score)]."""
    n_all = one(con, "SELECT count(*) FROM analytics_candidates")[0]
    k = sample_buckets(n_all, cap)
    rows = con.execute(
        """
        -- ordered lists: the bootstrap and the length deciles (stable sort, ties in
        -- input order) must not depend on the physical row order of a refresh
        SELECT j.judge_id, j.aspect, list(j.score ORDER BY j.candidate_id),
               list(c.n_words ORDER BY j.candidate_id)
        FROM analytics_judgments j JOIN analytics_candidates c USING (candidate_id)
        WHERE j.bucket < ? AND c.bucket < ? AND j.score IS NOT NULL
        GROUP BY j.judge_id, j.aspect ORDER BY j.judge_id, j.aspect
        """,
        [k, k],
    ).fetchall()
    out = []
    for judge, aspect, scores, words in rows:
        s, w = np.asarray(scores, float), np.asarray(words, float)
        n = len(s)
        if n < 2:
            rho = Stat("length_rho", None, n, note="fewer than two scored answers")
        elif np.all(s == s[0]) or np.all(w == w[0]):
            what = "scores" if np.all(s == s[0]) else "lengths"
            rho = Stat("length_rho", None, n, note=f"constant {what}: correlation is undefined")
        else:
            from scipy import stats

            value = float(stats.spearmanr(s, w).statistic)
            idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
            rho = Stat("length_rho", value, n, _ci(spearman_replicates(s, w, idx)))
        order = np.argsort(w, kind="stable")
        deciles = [
            (float(w[part].mean()), float(s[part].mean()))
            for part in np.array_split(order, min(10, n))
            if len(part)
        ]
        out.append({"judge_id": judge, "aspect": aspect, "rho": rho, "deciles": deciles})
    return out
