"""The instruction-following / faithfulness trade-off the RESET paper is about.

Points on two aspect axes (default x = ``instruction``, y = ``faithfulness``; each is a
candidate's mean valid score over judges):

* ``level="candidate"``: one point per candidate that has both aspects, a deterministic
  hash sample of at most ``cap`` points (picks included when they fall in the sample);
* ``level="setting" | "model" | "setting_model" | "kind"``: one point per group, the mean
  of each aspect over the candidates that have it. Instruction is judged on open-ended
  examples and faithfulness on grounded ones, so aggregated points exist even when no
  single candidate has both.

:func:`pareto_frontier` marks the points no other point beats on both axes.
:func:`model_view` places base, MTL and RESET checkpoints on the same axes from
finished evaluations (through ``reset_core.evaluation.compare``) and from their judged
answers on the test splits.

All aggregation runs in SQL over ``analytics_candidates`` (see ``reset_core.analytics.summaries``).

>>> pareto_frontier([(0.2, 0.9), (0.5, 0.5), (0.4, 0.4), (0.9, 0.1)])
[0, 1, 3]
"""

from __future__ import annotations

import numpy as np

from reset_core.analytics.summaries import live_picks, sample_buckets
from reset_core.aspects import ASPECT_COLS
from reset_core.store import one

LEVELS = ("candidate", "setting", "model", "setting_model", "kind")
TRADEOFF_SAMPLE = 5000
_GROUPS = {
    "setting": ["setting_id"],
    "model": ["model_id"],
    "setting_model": ["setting_id", "model_id"],
    "kind": ["kind"],
}


def pareto_frontier(points) -> list[int]:
    """Indices of the points not dominated on both axes (higher is better), by x.

    A point is dominated when another is at least as good on both axes and better on
    one. Equal points are all kept.

    >>> pareto_frontier([(1, 1), (1, 1), (0, 0)])
    [0, 1]
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return []
    order = np.lexsort((-pts[:, 1], -pts[:, 0]))  # x desc, then y desc
    keep = []
    best_y = -np.inf
    best_at_x = None
    for i in order:
        x, y = pts[i]
        if y > best_y:
            keep.append(int(i))
            best_y, best_at_x = y, (x, y)
        elif best_at_x is not None and (x, y) == best_at_x:
            keep.append(int(i))  # an exact tie with a frontier point
    return sorted(keep, key=lambda i: (pts[i, 0], -pts[i, 1], i))


def _where(kind: str | None, model: str | None, split: str | None) -> tuple[str, list]:
    clauses, params = [], []
    for col, val in (("kind", kind), ("model_id", model), ("split", split)):
        if val:
            clauses.append(f"{col} = ?")
            params.append(val)
    return (" AND ".join(clauses) or "true"), params


def _cols(x: str, y: str) -> tuple[str, str]:
    for name, a in (("x", x), ("y", y)):
        if a not in ASPECT_COLS:
            raise ValueError(f"{name}: must be one of {list(ASPECT_COLS)}, got {a!r}")
    return ASPECT_COLS[x], ASPECT_COLS[y]


def tradeoff_points(
    con,
    x: str = "instruction",
    y: str = "faithfulness",
    level: str = "setting",
    kind: str | None = None,
    model: str | None = None,
    split: str | None = "seen",
    cap: int = TRADEOFF_SAMPLE,
) -> dict:
    """Points for the scatter plus counts; see the module docstring for ``level``.

    Returns ``{"points": [dict], "frontier": [index], "n_candidates", "n_with_both",
    "n_failed", "sampled"}``; each point has ``x``, ``y`` and its group columns (or the
    candidate's ids and ``picked``), plus ``setting`` and ``model``, the labels people
    read, wherever it has a ``setting_id`` or ``model_id``.
    """
    if level not in LEVELS:
        raise ValueError(f"level: must be one of {list(LEVELS)}, got {level!r}")
    xc, yc = _cols(x, y)
    where, params = _where(kind, model, split)
    n_cand, n_both, n_failed, n_x, n_y = one(
        con,
        f"SELECT count(*), count(*) FILTER (WHERE {xc} IS NOT NULL AND {yc} IS NOT NULL), "
        f"coalesce(sum(n_failed), 0), count({xc}), count({yc}) "
        f"FROM analytics_candidates WHERE {where}",
        params,
    )
    out = {
        "n_candidates": n_cand,
        "n_with_both": n_both,
        "n_with_x": n_x,
        "n_with_y": n_y,
        "n_failed": int(n_failed),
        "sampled": False,
    }
    if level == "candidate":
        k = sample_buckets(n_both, cap)
        with live_picks(con) as picked:
            rows = con.execute(
                f"SELECT candidate_id, example_id, model_id, setting_id, kind, {xc}, {yc}, "
                f"{picked} FROM analytics_candidates a "
                f"LEFT JOIN _live_picks _lp USING (candidate_id) WHERE {where} AND bucket < ? "
                f"AND {xc} IS NOT NULL AND {yc} IS NOT NULL ORDER BY candidate_id",
                [*params, k],
            ).fetchall()
        keys = ("candidate_id", "example_id", "model_id", "setting_id", "kind", "x", "y", "picked")
        points = [dict(zip(keys, r, strict=True)) for r in rows]
        out["sampled"] = len(points) < n_both
        # The frontier over every candidate, not just the sample: distinct (x, y) pairs.
        pairs = con.execute(
            f"SELECT {xc}, {yc}, count(*) FROM analytics_candidates WHERE {where} "
            f"AND {xc} IS NOT NULL AND {yc} IS NOT NULL GROUP BY ALL",
            params,
        ).fetchall()
        front = pareto_frontier([(p[0], p[1]) for p in pairs])
        out["frontier_xy"] = sorted((pairs[i][0], pairs[i][1]) for i in front)
        out["n_on_frontier"] = int(sum(pairs[i][2] for i in front))
        fset = set(out["frontier_xy"])
        out["frontier"] = [i for i, p in enumerate(points) if (p["x"], p["y"]) in fset]
    else:
        group = _GROUPS[level]
        gcols = ", ".join(group)
        with live_picks(con) as picked:
            rows = con.execute(
                f"SELECT {gcols}, avg({xc}), avg({yc}), count({xc}), count({yc}), count(*), "
                f"count(*) FILTER (WHERE {picked}), coalesce(sum(n_failed), 0) "
                f"FROM analytics_candidates a LEFT JOIN _live_picks _lp USING (candidate_id) "
                f"WHERE {where} GROUP BY {gcols} ORDER BY {gcols}",
                params,
            ).fetchall()
        keys = (*group, "x", "y", "n_x", "n_y", "n", "n_picks", "n_failed")
        points = [dict(zip(keys, r, strict=True)) for r in rows]
        usable = [i for i, p in enumerate(points) if p["x"] is not None and p["y"] is not None]
        front = pareto_frontier([(points[i]["x"], points[i]["y"]) for i in usable])
        out["frontier"] = [usable[i] for i in front]
    out["points"] = _labelled(con, points)
    return out


def _labelled(con, points: list[dict]) -> list[dict]:
    """Add each point's setting and model labels (``T 0.5 · top-k 20``, a model's name)."""
    from reset_core.sampling.queries import setting_labels
    from reset_core.training.queries import model_labels

    settings = setting_labels(con) if any("setting_id" in p for p in points) else {}
    models = model_labels(con) if any("model_id" in p for p in points) else {}
    for p in points:
        if "setting_id" in p:
            p["setting"] = settings.get(p["setting_id"], p["setting_id"])
        if "model_id" in p:
            p["model"] = models.get(p["model_id"], p["model_id"])
    return points


#: How many finished evaluations the model view places (the most recent first).
MODEL_VIEW_EVALUATIONS = 10


def _evaluation_point(table, aspect: str) -> tuple[float | None, int]:
    """A checkpoint's mean on ``aspect`` from its comparison rows, pooled over splits.

    Instruction is read on instruction examples and faithfulness on context examples
    (the plane's convention); task on every example. Pooled = the n-weighted mean of
    the per-(kind, split) means, i.e. the mean over all those examples.
    """
    from reset_core.aspects import KIND_ASPECT

    rows = table[table.aspect == aspect]
    kinds = [k for k, a in KIND_ASPECT.items() if a == aspect]
    if kinds:
        rows = rows[rows.kind.isin(kinds)]
    n = int(rows.n.sum())
    if n == 0:
        return None, 0
    return float((rows.n * rows["mean"].fillna(0)).sum() / n), n


def model_view(con, x: str = "instruction", y: str = "faithfulness") -> list[dict]:
    """Models/checkpoints on the trade-off axes, from evaluations and judged test answers.

    One row per (model, source): ``source="evaluation <name>"`` places each checkpoint
    of a finished evaluation (the :data:`MODEL_VIEW_EVALUATIONS` most recent) by its
    comparison's means (``reset_core.evaluation.compare.means``: its frozen judges and decoding, on
    its test set; instruction on instruction examples, faithfulness on context ones);
    ``source="test answers"`` is the mean judged score of the model's candidates on the
    test splits, by every judge and setting.
    """
    from reset_core.evaluation.compare import means
    from reset_core.training.queries import model_labels

    xc, yc = _cols(x, y)
    labels = model_labels(con)
    out = []
    stages = dict(con.execute("SELECT model_id, stage FROM models").fetchall())
    for evaluation_id, name in con.execute(
        "SELECT evaluation_id, name FROM evaluations WHERE status = 'done' "
        "ORDER BY coalesce(finished_at, created_at) DESC, evaluation_id LIMIT ?",
        [MODEL_VIEW_EVALUATIONS],
    ).fetchall():
        # The comparison's means (its intervals and tests are the Evaluate page's), in
        # SQL, since this view runs on every render of the Trade-off page.
        table = means(con, evaluation_id)
        for (model_id, label), mine in table.groupby(["model_id", "label"], sort=False):
            vx, nx = _evaluation_point(mine, x)
            vy, ny = _evaluation_point(mine, y)
            if vx is None or vy is None:
                continue
            out.append(
                {
                    "model_id": model_id,
                    "name": label or labels.get(model_id, model_id),
                    "stage": stages.get(model_id, "other"),
                    "source": f"evaluation {name}",
                    "evaluation_id": evaluation_id,
                    "x": vx,
                    "y": vy,
                    "n": min(nx, ny),
                }
            )
    for row in con.execute(
        f"""
        SELECT a.model_id, coalesce(m.name, a.model_id), coalesce(m.stage, 'other'),
               avg({xc}), avg({yc}), count({xc}), count({yc})
        FROM analytics_candidates a LEFT JOIN models m USING (model_id)
        WHERE a.split IN ('test_seen', 'test_unseen')
        GROUP BY ALL HAVING count({xc}) > 0 AND count({yc}) > 0 ORDER BY 1
        """
    ).fetchall():
        out.append(
            {
                "model_id": row[0],
                "name": labels.get(row[0], row[1]),
                "stage": row[2],
                "source": "test answers",
                "evaluation_id": None,
                "x": row[3],
                "y": row[4],
                "n": min(row[5], row[6]),
            }
        )
    return out
