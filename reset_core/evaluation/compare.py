"""Checkpoints compared on one evaluation: means, paired deltas, bootstrap CIs, paired tests.

An evaluation's *answers* are the candidates of its checkpoints on its examples under
its frozen decoding setting (``frozen.setting_id``, sample 0); its *verdicts* are the
judgments of those answers by its frozen judges (``frozen.judges``: aspect → judge
ids). Nothing else is read, so a judge added or a rubric edited later never changes an
earlier evaluation's figures.

Per answer and aspect, the score is the mean of the frozen judges' valid [0, 1] scores
(each judge's latest valid verdict; a failed verdict is no vote). An example *needs* an
aspect when any frozen judge voted or failed on it for any checkpoint (``not_applicable``
verdicts are not votes: IFEval on a prompt without verifiable instructions, K-Precision
without a context). A checkpoint with no score on a needed aspect (no answer, the judge
failed, or not judged yet) is counted in ``n_missing``, never scored 0.

Statistics (maintained code only, on per-example vectors; everything else is SQL):

- paired delta vs the baseline = mean over the examples both checkpoints have a score
  on, of (score − baseline score);
- its 95% CI: ``scipy.stats.bootstrap`` (BCa, resampling examples, seeded), which for a
  paired design is the bootstrap of the per-example differences;
- paired test: ``scipy.stats.wilcoxon`` (signed-rank, two-sided); NaN with the reason
  when it cannot be computed (fewer than 2 pairs, or every delta 0).

>>> d = np.array([0.1, 0.2, 0.0, 0.3, 0.1])
>>> s = paired_stats(d, n_boot=500, seed=0)
>>> round(s["delta"], 2), s["ci_low"] <= s["delta"] <= s["ci_high"], s["test"]
(0.14, True, 'Wilcoxon signed-rank, two-sided')
>>> paired_stats(np.zeros(4))["test"]
'not computed: every paired delta is 0'
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from reset_core.aspects import ASPECTS, KIND_ASPECT, check_aspect
from reset_core.evaluation import ifeval
from reset_core.store import one

#: What the tables' intervals and tests are, as the page and the reports say it.
CI_METHOD = (
    "95% bootstrap CI (scipy.stats.bootstrap, BCa, {n_boot} resamples of the examples, "
    "seed {seed}); for deltas the examples are resampled in pairs"
)
TEST_METHOD = "Wilcoxon signed-rank test, two-sided (scipy.stats.wilcoxon), on the paired deltas"
WILCOXON = "Wilcoxon signed-rank, two-sided"

#: Orders the before/after browser offers (see :func:`answer_pairs`).
PAIR_ORDERS = {
    "delta": "delta ASC NULLS LAST",  # b's worst regressions against a first
    "-delta": "delta DESC NULLS LAST",  # b's largest gains first
    "abs": "abs(delta) DESC NULLS LAST",  # largest change either way
    "example": "example_id",
}

TABLE_COLUMNS = [
    "aspect",
    "kind",
    "split",
    "model_id",
    "label",
    "is_baseline",
    "n",
    "n_missing",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "n_pairs",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "test",
]
IFEVAL_COLUMNS = [
    "model_id",
    "label",
    "is_baseline",
    "measure",
    "measure_text",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "n_pairs",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "n_prompts",
    "n_unscored",
    "unscored_reasons",
]
KPRECISION_COLUMNS = [
    "model_id",
    "label",
    "is_baseline",
    "split",
    "n",
    "n_missing",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "n_pairs",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "test",
]
PLANE_COLUMNS = [
    "model_id",
    "label",
    "is_baseline",
    "instruction",
    "instruction_ci_low",
    "instruction_ci_high",
    "n_instruction",
    "faithfulness",
    "faithfulness_ci_low",
    "faithfulness_ci_high",
    "n_faithfulness",
    "delta_instruction",
    "delta_faithfulness",
]


@dataclass
class Comparison:
    """Every figure of one evaluation's comparison (see the module docstring).

    - ``table``: one row per (aspect, kind, split, checkpoint): ``label, n, n_missing,
      mean`` (+ its CI), ``n_pairs, delta, ci_low, ci_high`` (the delta's CI),
      ``p_value, test`` (``test`` names the test, or says why there is none);
    - ``ifeval``: one row per (checkpoint, IFEval measure) with its CI over prompts and
      the paired delta against the baseline; empty when the panel has no IFEval judge;
    - ``kprecision``: one row per (checkpoint, split): the ``knowledge_precision``
      judge alone on context examples; empty when the panel lacks it;
    - ``plane``: one row per checkpoint: instruction (on instruction examples) and
      faithfulness (on context examples), pooled over splits, with CIs.
    """

    evaluation_id: str
    name: str
    baseline: str
    labels: dict[str, str]  # model_id -> label, in the evaluation's order
    table: pd.DataFrame
    ifeval: pd.DataFrame
    kprecision: pd.DataFrame
    plane: pd.DataFrame
    frozen: dict = field(repr=False, default_factory=dict)
    n_boot: int = 2000
    seed: int = 0

    @property
    def method(self) -> str:
        """The statistics used, in one sentence per figure, for captions and reports."""
        ci = (
            CI_METHOD.format(n_boot=self.n_boot, seed=self.seed)
            if self.n_boot
            else "no confidence intervals (n_boot=0)"
        )
        return (
            f"Means over examples; a missing score (no answer, a failed or pending judge) "
            f"is counted in n_missing, never as 0. Delta = mean paired difference against "
            f"{self.labels.get(self.baseline, self.baseline)} over the examples both have a "
            f"score on (n_pairs). CI: {ci}. Test: {TEST_METHOD}."
        )


# ----------------------------------------------------------------------------- statistics


def _ci(data: tuple[np.ndarray, ...], statistic, n_boot: int, seed: int) -> tuple[float, float]:
    """A seeded 95% BCa bootstrap CI of ``statistic`` over rows resampled together."""
    n = len(data[0])
    if n_boot <= 0 or n < 2:
        return (np.nan, np.nan)
    if all(np.ptp(x) == 0 for x in data):
        value = statistic(*data, axis=-1)
        # Every resample gives the same value: the interval is that point (BCa's
        # acceleration is 0/0 here and scipy would answer NaN with a warning).
        return (float(value), float(value))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # A statistic that no resample moves (e.g. every checked instruction followed)
        # makes BCa's acceleration 0/0: scipy warns and answers NaN, handled below.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_boot,
            paired=len(data) > 1,
            vectorized=True,
            confidence_level=0.95,
            method="BCa",
            rng=np.random.default_rng(seed),
            batch=max(1, min(n_boot, 4_000_000 // max(n, 1))),  # bounded memory
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    dist = res.bootstrap_distribution
    if np.isnan(low) and np.isnan(high) and np.ptp(dist) == 0:
        return (float(dist[0]), float(dist[0]))  # every resample agrees: a point interval
    return (low, high)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap CI of the mean of ``values`` (see :data:`CI_METHOD`).

    >>> mean_ci(np.array([0.5, 0.5, 0.5]))
    (0.5, 0.5)
    """
    return _ci((np.asarray(values, dtype=float),), _mean, n_boot, seed)


def paired_stats(deltas: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean paired delta, its bootstrap CI and the Wilcoxon signed-rank p-value.

    ``test`` names the test, or says why there is no p-value (NaN then).
    """
    # Scores are means of judges' [0, 1] scores, so equal answers can differ by float
    # noise ((0.1 + 0.5) / 2 vs (0.2 + 0.4) / 2): rounded, a tie stays a tie and a zero
    # delta stays zero for the signed-rank test.
    d = np.round(np.asarray(deltas, dtype=float), 12)
    out = {"n_pairs": len(d), "delta": float(d.mean()) if len(d) else np.nan}
    out["ci_low"], out["ci_high"] = _ci((d,), _mean, n_boot, seed)
    if len(d) < 2:
        out["p_value"], out["test"] = np.nan, "not computed: fewer than 2 paired examples"
    elif not np.any(d):
        out["p_value"], out["test"] = np.nan, "not computed: every paired delta is 0"
    else:
        try:
            out["p_value"] = float(stats.wilcoxon(d, alternative="two-sided").pvalue)
            out["test"] = WILCOXON
        except ValueError as e:  # scipy's own refusal, passed on as the reason
            out["p_value"], out["test"] = np.nan, f"not computed: {e}"
    return out


# ----------------------------------------------------------------------------- reading


def evaluation_info(con, evaluation_id: str) -> dict:
    """The evaluation's name, status, frozen inputs and checkpoints (in their order).

    Raises ``ValueError`` naming the id when there is no such evaluation.
    """
    row = one(
        con,
        "SELECT name, status, frozen, config, experiment_id, created_at, finished_at "
        "FROM evaluations WHERE evaluation_id = ?",
        [evaluation_id],
    )
    if row is None:
        raise ValueError(f"evaluation_id: no evaluation {evaluation_id!r}")
    name, status, frozen, config, experiment_id, created, finished = row
    checkpoints = con.execute(
        "SELECT model_id, label FROM evaluation_checkpoints WHERE evaluation_id = ? "
        "ORDER BY position, model_id",
        [evaluation_id],
    ).fetchall()
    return {
        "evaluation_id": evaluation_id,
        "name": name,
        "status": status,
        "frozen": _json(frozen),
        "config": _json(config),
        "experiment_id": experiment_id,
        "created_at": created,
        "finished_at": finished,
        "checkpoints": [m for m, _ in checkpoints],
        "labels": dict(checkpoints),
    }


def _json(v) -> dict:
    return json.loads(v) if isinstance(v, str) else (v or {})


def _frozen_judges(frozen: dict, evaluation_id: str) -> dict[str, list[str]]:
    judges = frozen.get("judges")
    if not isinstance(judges, dict) or "setting_id" not in frozen:
        raise ValueError(
            f"evaluation {evaluation_id}: frozen has no 'judges' per aspect or no "
            "'setting_id'; it was not created by create_evaluation"
        )
    return {a: list(ids) for a, ids in judges.items() if a in ASPECTS and ids}


def _judge_named(frozen: dict, aspect: str, name: str) -> list[str]:
    """The frozen judges of ``aspect`` that are the metric judge ``name`` (any version)."""
    specs = frozen.get("specs") or {}
    return [
        j
        for j in (frozen.get("judges") or {}).get(aspect, [])
        if (specs.get(j) or {}).get("name") == name or j.startswith(f"metric:{name}:")
    ]


# The evaluation's answers and each one's mean frozen-judge score per aspect, aggregated
# in SQL to one row per (example, checkpoint, aspect) over the examples that need it,
# with the baseline's score on the same example and aspect beside it (``base``).
# $judges is the frozen panel as (aspect, judge_id) pairs.
_SCORES_SQL = """
WITH ex AS (
    SELECT e.example_id, e.kind, e.split FROM evaluation_examples ee
    JOIN examples e USING (example_id)
    WHERE ee.evaluation_id = $eid {ex_filter}
), ck AS (
    SELECT model_id FROM evaluation_checkpoints WHERE evaluation_id = $eid
), fj AS (
    SELECT unnest($aspects) AS aspect, unnest($judges) AS judge_id
), ans AS (
    SELECT c.candidate_id, c.example_id, c.model_id FROM candidates c
    JOIN ex USING (example_id) JOIN ck USING (model_id)
    WHERE c.setting_id = $setting AND c.sample_index = 0
), v AS (
    SELECT a.example_id, a.model_id, j.aspect, j.judge_id,
           arg_max(j.score, j.created_at) FILTER (WHERE j.score IS NOT NULL) AS score,
           bool_or(j.status <> 'not_applicable') AS votes
    FROM ans a JOIN judgments j USING (candidate_id) JOIN fj USING (aspect, judge_id)
    GROUP BY ALL
), s AS (
    SELECT example_id, model_id, aspect, avg(score) AS score, bool_or(votes) AS votes
    FROM v GROUP BY ALL
), need AS (
    SELECT DISTINCT example_id, aspect FROM s WHERE votes
), scores AS (
    SELECT need.aspect, ex.kind, ex.split, need.example_id, ck.model_id, s.score,
           max(s.score) FILTER (WHERE ck.model_id = $baseline)
               OVER (PARTITION BY need.aspect, need.example_id) AS base
    FROM need JOIN ex USING (example_id) CROSS JOIN ck
    LEFT JOIN s ON s.example_id = need.example_id AND s.model_id = ck.model_id
               AND s.aspect = need.aspect
)
"""
_SCORE_COLUMNS = ["aspect", "kind", "split", "example_id", "model_id", "score", "base"]


def _score_params(evaluation_id, setting_id, judges, baseline, kind, split) -> tuple[str, dict]:
    pairs = [(a, j) for a, ids in judges.items() for j in ids]
    params = {
        "eid": evaluation_id,
        "setting": setting_id,
        "aspects": [a for a, _ in pairs],
        "judges": [j for _, j in pairs],
        "baseline": baseline,
    }
    ex_filter = ""
    if kind:
        ex_filter += " AND e.kind = $kind"
        params["kind"] = kind
    if split:
        ex_filter += " AND e.split = $split"
        params["split"] = split
    return _SCORES_SQL.format(ex_filter=ex_filter), params


def _scores(
    con,
    evaluation_id: str,
    setting_id: str,
    judges: dict[str, list[str]],
    baseline: str,
    *,
    kind: str | None = None,
    split: str | None = None,
) -> pd.DataFrame:
    """Per (aspect, example, checkpoint): its score (NaN = missing) and the baseline's."""
    if not any(judges.values()):
        return pd.DataFrame(columns=_SCORE_COLUMNS)
    sql, params = _score_params(evaluation_id, setting_id, judges, baseline, kind, split)
    df = con.execute(
        sql + "SELECT * FROM scores ORDER BY aspect, kind, split, example_id, model_id", params
    ).df()
    # Few distinct values each: categories make the per-group slicing cheap.
    return df.astype({c: "category" for c in ("aspect", "kind", "split", "model_id")})


def means(con, evaluation_id: str) -> pd.DataFrame:
    """Per (aspect, kind, split, checkpoint): ``label, n, n_missing, mean``, all in SQL.

    The means of :func:`compare`'s table without its intervals and tests: what a view
    that only places checkpoints needs (the Trade-off page's model view).
    """
    info = evaluation_info(con, evaluation_id)
    judges = _frozen_judges(info["frozen"], evaluation_id)
    columns = ["aspect", "kind", "split", "model_id", "label", "n", "n_missing", "mean"]
    if not any(judges.values()):
        return pd.DataFrame(columns=columns)
    base = info["checkpoints"][0] if info["checkpoints"] else ""
    sql, params = _score_params(
        evaluation_id, info["frozen"]["setting_id"], judges, base, None, None
    )
    df = con.execute(
        sql + "SELECT aspect, kind, split, model_id, count(score) AS n, "
        "count(*) - count(score) AS n_missing, avg(score) AS mean "
        "FROM scores GROUP BY ALL ORDER BY ALL",
        params,
    ).df()
    df.insert(4, "label", df.model_id.map(info["labels"]).fillna(df.model_id))
    return df


def _paired_rows(
    scores: pd.DataFrame,
    group: list[str],
    baseline: str,
    n_boot: int,
    seed: int,
) -> list[dict]:
    """Per group and checkpoint: n, n_missing, mean (+CI), paired delta stats."""
    rows = []
    if scores.empty:
        return rows
    for key, g in scores.groupby([*group, "model_id"], sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        model_id = key[-1]
        valid = g.score.dropna().to_numpy(dtype=float)
        row = dict(zip([*group, "model_id"], key, strict=True))
        row.update(
            n=len(valid),
            n_missing=int(g.score.isna().sum()),
            mean=float(valid.mean()) if len(valid) else np.nan,
        )
        row["mean_ci_low"], row["mean_ci_high"] = _ci((valid,), _mean, n_boot, seed)
        if model_id == baseline:
            row.update(
                n_pairs=len(valid),
                delta=np.nan,
                ci_low=np.nan,
                ci_high=np.nan,
                p_value=np.nan,
                test="baseline",
            )
        else:
            both = g.dropna(subset=["score", "base"])  # the examples both have a score on
            row.update(
                paired_stats(
                    (both.score - both.base).to_numpy(dtype=float), n_boot=n_boot, seed=seed
                )
            )
        rows.append(row)
    return rows


def _frame(rows: list[dict], columns: list[str], labels: dict[str, str], baseline: str):
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["label"] = df.model_id.map(labels).fillna(df.model_id)
    df["is_baseline"] = df.model_id == baseline
    return df[columns].reset_index(drop=True)


def compare(
    con, evaluation_id: str, baseline: str | None = None, n_boot: int = 2000, seed: int = 0
) -> Comparison:
    """Compare an evaluation's checkpoints against ``baseline`` (default: the config's).

    ``n_boot`` bootstrap resamples per interval (0 = no intervals, e.g. for a quick
    plot); ``seed`` makes every interval reproducible. Raises ``ValueError`` naming the
    field for an unknown evaluation or a baseline that is not one of its checkpoints.
    """
    if n_boot < 0:
        raise ValueError(f"n_boot: must be >= 0, got {n_boot}")
    info = evaluation_info(con, evaluation_id)
    frozen, labels, models = info["frozen"], info["labels"], info["checkpoints"]
    judges = _frozen_judges(frozen, evaluation_id)
    if baseline is None:
        baseline = info["config"].get("baseline") or (models[0] if models else None)
    if baseline not in models:
        raise ValueError(
            f"baseline: {baseline!r} is not one of the checkpoints of {evaluation_id} "
            f"({', '.join(models)})"
        )
    order = {m: i for i, m in enumerate(models)}
    setting = frozen["setting_id"]

    scores = _scores(con, evaluation_id, setting, judges, baseline)
    table = _frame(
        _paired_rows(scores, ["aspect", "kind", "split"], baseline, n_boot, seed),
        TABLE_COLUMNS,
        labels,
        baseline,
    )
    if not table.empty:
        table = (
            table.assign(
                _a=table.aspect.map(ASPECTS.index), _m=table.model_id.map(order.__getitem__)
            )
            .sort_values(["_a", "kind", "split", "_m"])
            .drop(columns=["_a", "_m"])
            .reset_index(drop=True)
        )

    kp_judges = _judge_named(frozen, "faithfulness", "knowledge_precision")
    kp = pd.DataFrame(columns=KPRECISION_COLUMNS)
    if kp_judges:
        kp_scores = _scores(
            con, evaluation_id, setting, {"faithfulness": kp_judges}, baseline, kind="context"
        )
        kp = _frame(
            _paired_rows(kp_scores, ["split"], baseline, n_boot, seed),
            KPRECISION_COLUMNS,
            labels,
            baseline,
        )
        if not kp.empty:
            kp = (
                kp.assign(_m=kp.model_id.map(order.__getitem__))
                .sort_values(["_m", "split"])
                .drop(columns="_m")
                .reset_index(drop=True)
            )

    return Comparison(
        evaluation_id=evaluation_id,
        name=info["name"],
        baseline=baseline,
        labels=labels,
        table=table,
        ifeval=_ifeval(con, info, baseline, n_boot, seed),
        kprecision=kp,
        plane=_plane(scores, models, labels, baseline, n_boot, seed),
        frozen=frozen,
        n_boot=n_boot,
        seed=seed,
    )


def _plane(scores, models, labels, baseline, n_boot, seed) -> pd.DataFrame:
    """Each checkpoint's instruction (instruction examples) and faithfulness (context)."""
    rows = {
        m: {"model_id": m, "label": labels.get(m, m), "is_baseline": m == baseline} for m in models
    }
    for aspect in ("instruction", "faithfulness"):
        kind = next(k for k, a in KIND_ASPECT.items() if a == aspect)
        sub = scores[(scores.aspect == aspect) & (scores.kind == kind)]
        groups = dict(list(sub.groupby("model_id", observed=True)))
        for m, row in rows.items():
            g = groups.get(m, sub.iloc[:0])
            mine = g.score.dropna().to_numpy(dtype=float)
            row[aspect] = float(mine.mean()) if len(mine) else np.nan
            row[f"{aspect}_ci_low"], row[f"{aspect}_ci_high"] = _ci((mine,), _mean, n_boot, seed)
            row[f"n_{aspect}"] = len(mine)
            d = (g.score - g.base).dropna()
            row[f"delta_{aspect}"] = float(d.mean()) if len(d) and m != baseline else np.nan
    return pd.DataFrame(list(rows.values()), columns=PLANE_COLUMNS)


# ----------------------------------------------------------------------------- IFEval


def _ifeval_frame(con, info: dict, judges: list[str]) -> pd.DataFrame:
    """One row per (IFEval prompt, checkpoint): the latest parseable verdict, or why not."""
    from reset_core.judging.metric_judges import IFEvalJudge

    return con.execute(
        f"""
        WITH ex AS (
            SELECT e.example_id FROM evaluation_examples ee JOIN examples e USING (example_id)
            WHERE ee.evaluation_id = $eid AND {IFEvalJudge.applies_sql}
        ), ck AS (
            SELECT model_id FROM evaluation_checkpoints WHERE evaluation_id = $eid
        ), ans AS (
            SELECT c.candidate_id, c.example_id, c.model_id FROM candidates c
            JOIN ex USING (example_id) JOIN ck USING (model_id)
            WHERE c.setting_id = $setting AND c.sample_index = 0
        ), v AS (
            SELECT a.example_id, a.model_id,
                   arg_max(j.raw_output, j.created_at) FILTER (
                       WHERE j.raw_output IS NOT NULL AND j.status IN ('ok', 'not_applicable')
                   ) AS raw_output,
                   arg_max(j.status, j.created_at) AS status
            FROM ans a JOIN judgments j USING (candidate_id)
            WHERE j.aspect = 'instruction' AND list_contains($judges, j.judge_id)
            GROUP BY ALL
        )
        SELECT ex.example_id, ck.model_id, ans.candidate_id IS NOT NULL AS answered,
               v.raw_output, v.status
        FROM ex CROSS JOIN ck
        LEFT JOIN ans ON ans.example_id = ex.example_id AND ans.model_id = ck.model_id
        LEFT JOIN v ON v.example_id = ex.example_id AND v.model_id = ck.model_id
        ORDER BY ex.example_id, ck.model_id
        """,
        {"eid": info["evaluation_id"], "setting": info["frozen"]["setting_id"], "judges": judges},
    ).df()


def _result(answered: bool, raw: str | None, status: str | None) -> ifeval.IFEvalResult:
    """The prompt's IFEval result; a prompt without one is unscored, with the reason."""
    r = ifeval.parse_result(raw) if isinstance(raw, str) else None
    if r is not None:
        return r
    if not answered:
        why = "no answer from this checkpoint"
    elif status is None or (isinstance(status, float) and np.isnan(status)):
        why = "not judged yet"
    else:
        why = f"no IFEval verdict (judge status: {status})"
    return ifeval.IFEvalResult((), (), (), {"": why})


def _per_prompt(results: list[ifeval.IFEvalResult]) -> pd.DataFrame:
    """Per prompt: prompt-level verdicts (NaN when incomplete) and instruction counts."""
    return pd.DataFrame(
        {
            "prompt_strict": [float(r.prompt_strict) if r.complete else np.nan for r in results],
            "prompt_loose": [float(r.prompt_loose) if r.complete else np.nan for r in results],
            "inst_strict_f": [sum(v is True for v in r.strict) for r in results],
            "inst_strict_n": [sum(v is not None for v in r.strict) for r in results],
            "inst_loose_f": [sum(v is True for v in r.loose) for r in results],
            "inst_loose_n": [sum(v is not None for v in r.loose) for r in results],
        }
    )


def _ratio(f, n, axis=-1):
    return np.sum(f, axis=axis) / np.sum(n, axis=axis)


def _ratio_delta(fa, na, fb, nb, axis=-1):
    return _ratio(fa, na, axis) - _ratio(fb, nb, axis)


def _ifeval(con, info: dict, baseline: str, n_boot: int, seed: int) -> pd.DataFrame:
    """The four IFEval measures per checkpoint, CIs over prompts, deltas vs baseline."""
    judges = _judge_named(info["frozen"], "instruction", "ifeval")
    if not judges:
        return pd.DataFrame(columns=IFEVAL_COLUMNS)
    frame = _ifeval_frame(con, info, judges)
    if frame.empty:
        return pd.DataFrame(columns=IFEVAL_COLUMNS)
    per_model: dict[str, pd.DataFrame] = {}
    acc: dict[str, dict] = {}
    for m in info["checkpoints"]:
        g = frame[frame.model_id == m]
        results = [
            _result(a, r, s) for a, r, s in zip(g.answered, g.raw_output, g.status, strict=True)
        ]
        acc[m] = ifeval.accuracy(results)
        per_model[m] = _per_prompt(results).set_index(g.example_id.to_numpy())
    rows = []
    base = per_model[baseline]
    for m in info["checkpoints"]:
        p = per_model[m]
        for measure in ifeval.MEASURES:
            row = {
                "model_id": m,
                "measure": measure,
                "measure_text": ifeval.MEASURE_TEXT[measure],
                "value": acc[m][measure],
                "n_prompts": acc[m]["n_prompts"],
                "n_unscored": acc[m]["n_unscored"],
                "unscored_reasons": acc[m]["unscored_reasons"],
            }
            if measure.startswith("prompt"):
                v = p[measure].dropna().to_numpy()
                row["n"] = len(v)
                row["ci_low"], row["ci_high"] = _ci((v,), _mean, n_boot, seed)
                both = pd.concat([p[measure], base[measure]], axis=1, keys=["a", "b"]).dropna()
                d = (both.a - both.b).to_numpy()
                row["n_pairs"] = len(d)
                row["delta"] = float(d.mean()) if len(d) and m != baseline else np.nan
                if m != baseline:
                    row["delta_ci_low"], row["delta_ci_high"] = _ci((d,), _mean, n_boot, seed)
            else:
                f, n = p[f"{measure}_f"], p[f"{measure}_n"]
                keep = n > 0
                row["n"] = int(n.sum())
                row["ci_low"], row["ci_high"] = _ci(
                    (f[keep].to_numpy(float), n[keep].to_numpy(float)), _ratio, n_boot, seed
                )
                both = (n > 0) & (base[f"{measure}_n"] > 0)
                row["n_pairs"] = int(both.sum())
                if m != baseline and both.any():
                    arrays = tuple(
                        s[both].to_numpy(float)
                        for s in (f, n, base[f"{measure}_f"], base[f"{measure}_n"])
                    )
                    row["delta"] = float(_ratio_delta(*arrays))
                    row["delta_ci_low"], row["delta_ci_high"] = _ci(
                        arrays, _ratio_delta, n_boot, seed
                    )
            rows.append(row)
    out = _frame(rows, IFEVAL_COLUMNS, info["labels"], baseline)
    return out.astype({"value": float, "delta": float, "delta_ci_low": float})


# ----------------------------------------------------------------------------- browser


def _pair_judges(con, evaluation_id: str) -> tuple[dict, dict[str, list[str]]]:
    info = evaluation_info(con, evaluation_id)
    return info, _frozen_judges(info["frozen"], evaluation_id)


def _check_models(info: dict, *models: str) -> None:
    for name, m in zip(("a", "b"), models, strict=False):
        if m not in info["labels"]:
            raise ValueError(
                f"{name}: {m!r} is not one of the checkpoints of {info['evaluation_id']} "
                f"({', '.join(info['checkpoints'])})"
            )


def answer_pairs(
    con,
    evaluation_id: str,
    a: str,
    b: str,
    *,
    aspect: str | None = None,
    kind: str | None = None,
    split: str | None = None,
    order: str = "delta",
    limit: int = 50,
    offset: int = 0,
) -> pd.DataFrame:
    """One page of the before/after browser: examples answered by ``a`` and ``b``.

    Columns ``example_id, kind, split, source, instruction`` (a preview), ``aspect,
    score_a, score_b, delta`` (= score_b − score_a; NULL where either has no score).
    ``aspect=None`` scores each example on its kind's own aspect (instruction or
    faithfulness); ``aspect="instruction"``/``"faithfulness"`` lists only the examples
    of the kind that aspect is asked of, ``"task"`` every example. ``order``: ``delta`` (b's regressions first), ``-delta`` (b's gains
    first), ``abs`` (largest change), ``example``. Windowed in SQL: ``limit`` rows
    from ``offset``; ``df.attrs["n_total"]`` is how many rows the filter matches.
    """
    if order not in PAIR_ORDERS:
        raise ValueError(f"order: must be one of {list(PAIR_ORDERS)}, got {order!r}")
    if aspect is not None:
        check_aspect(aspect)
    if limit < 1 or offset < 0:
        raise ValueError(f"limit/offset: need limit >= 1 and offset >= 0, got {limit}, {offset}")
    info, judges = _pair_judges(con, evaluation_id)
    _check_models(info, a, b)
    pairs = [(asp, j) for asp, ids in judges.items() for j in ids]
    params = {
        "eid": evaluation_id,
        "setting": info["frozen"]["setting_id"],
        "a": a,
        "b": b,
        "aspects": [p[0] for p in pairs],
        "judges": [p[1] for p in pairs],
        "limit": int(limit),
        "offset": int(offset),
    }
    where = ""
    if kind:
        where += " AND e.kind = $kind"
        params["kind"] = kind
    if split:
        where += " AND e.split = $split"
        params["split"] = split
    if aspect:
        aspect_sql = "$aspect"
        params["aspect"] = aspect
        # instruction is asked of instruction examples, faithfulness of context ones
        own = [k for k, a in KIND_ASPECT.items() if a == aspect]
        if own:
            where += " AND e.kind = $own_kind"
            params["own_kind"] = own[0]
    else:
        aspect_sql = "CASE e.kind " + " ".join(
            f"WHEN '{k}' THEN '{asp}'" for k, asp in KIND_ASPECT.items()
        )
        aspect_sql += " END"
    df = con.execute(
        f"""
        WITH ex AS (
            SELECT e.example_id, e.kind, e.split, e.source, {aspect_sql} AS aspect
            FROM evaluation_examples ee JOIN examples e USING (example_id)
            WHERE ee.evaluation_id = $eid {where}
        ), fj AS (
            SELECT unnest($aspects) AS aspect, unnest($judges) AS judge_id
        ), ans AS (
            SELECT c.candidate_id, c.example_id, c.model_id FROM candidates c
            JOIN ex USING (example_id)
            WHERE c.setting_id = $setting AND c.sample_index = 0 AND c.model_id IN ($a, $b)
        ), v AS (
            SELECT a.example_id, a.model_id, j.aspect, j.judge_id,
                   arg_max(j.score, j.created_at) FILTER (WHERE j.score IS NOT NULL) AS score
            FROM ans a JOIN judgments j USING (candidate_id)
            JOIN ex ON ex.example_id = a.example_id AND ex.aspect = j.aspect
            JOIN fj ON fj.aspect = j.aspect AND fj.judge_id = j.judge_id
            GROUP BY ALL
        ), s AS (
            SELECT example_id,
                   avg(score) FILTER (WHERE model_id = $a) AS score_a,
                   avg(score) FILTER (WHERE model_id = $b) AS score_b
            FROM v GROUP BY example_id
        ), page AS (
            SELECT ex.example_id, ex.kind, ex.split, ex.source, ex.aspect, s.score_a, s.score_b,
                   s.score_b - s.score_a AS delta, count(*) OVER () AS n_total
            FROM ex LEFT JOIN s USING (example_id)
            ORDER BY {PAIR_ORDERS[order]}, ex.example_id
            LIMIT $limit OFFSET $offset
        )
        SELECT page.example_id, page.kind, page.split, page.source,
               left(e.instruction, 160) AS instruction, page.aspect,
               page.score_a, page.score_b, page.delta, page.n_total
        FROM page JOIN examples e USING (example_id)
        ORDER BY {PAIR_ORDERS[order].replace("delta", "page.delta")}, page.example_id
        """,
        params,
    ).df()
    n_total = (
        int(df.n_total.iloc[0]) if len(df) else _count_pairs(con, evaluation_id, where, params)
    )
    df = df.drop(columns="n_total")
    df.attrs["n_total"] = n_total
    return df


def _count_pairs(con, evaluation_id: str, where: str, params: dict) -> int:
    p = {k: params[k] for k in ("kind", "split", "own_kind") if k in params}
    return one(
        con,
        f"SELECT count(*) FROM evaluation_examples ee JOIN examples e USING (example_id) "
        f"WHERE ee.evaluation_id = $eid {where}",
        {"eid": evaluation_id, **p},
    )[0]


def answer_pair(con, evaluation_id: str, example_id: str, a: str, b: str) -> dict:
    """One example answered by ``a`` and ``b``: its texts, each answer, each verdict.

    ``{"example": {example_id, instruction, context, reference, kind, split, source},
    "a": side, "b": side, "review_query": {...}}`` where a side is ``{model_id, label,
    candidate_id, text, finish_reason, completion_tokens, aspects: {aspect: mean score},
    verdicts: [{judge_id, aspect, score, status, rationale, error}]}`` (text None when
    the checkpoint has not answered yet). ``review_query`` opens both answers in Review
    (``reset_core.review.links``).
    """
    from reset_core.review import links

    info, judges = _pair_judges(con, evaluation_id)
    _check_models(info, a, b)
    ex = con.execute(
        "SELECT e.example_id, e.instruction, e.context, e.reference, e.kind, e.split, e.source "
        "FROM evaluation_examples ee JOIN examples e USING (example_id) "
        "WHERE ee.evaluation_id = ? AND ee.example_id = ?",
        [evaluation_id, example_id],
    ).df()
    if ex.empty:
        raise ValueError(f"example_id: {example_id!r} is not in evaluation {evaluation_id}")
    pairs = [(asp, j) for asp, ids in judges.items() for j in ids]
    out = {"example": ex.iloc[0].to_dict()}
    ids = []
    for side, m in (("a", a), ("b", b)):
        cand = one(
            con,
            "SELECT candidate_id, text, finish_reason, completion_tokens FROM candidates "
            "WHERE example_id = ? AND model_id = ? AND setting_id = ? AND sample_index = 0",
            [example_id, m, info["frozen"]["setting_id"]],
        )
        d = {
            "model_id": m,
            "label": info["labels"][m],
            "candidate_id": None,
            "text": None,
            "finish_reason": None,
            "completion_tokens": None,
            "aspects": {},
            "verdicts": [],
        }
        if cand is not None:
            d.update(
                zip(
                    ("candidate_id", "text", "finish_reason", "completion_tokens"),
                    cand,
                    strict=False,
                )
            )
            ids.append(cand[0])
            verdicts = con.execute(
                """
                WITH fj AS (SELECT unnest($aspects) AS aspect, unnest($judges) AS judge_id)
                SELECT j.judge_id, j.aspect,
                       arg_max(j.score, j.created_at) FILTER (WHERE j.score IS NOT NULL)
                           AS score,
                       arg_max(j.status, (j.score IS NOT NULL, j.created_at)) AS status,
                       arg_max(j.rationale, (j.score IS NOT NULL, j.created_at)) AS rationale,
                       arg_max(j.error, (j.score IS NOT NULL, j.created_at)) AS error
                FROM judgments j JOIN fj USING (aspect, judge_id)
                WHERE j.candidate_id = $cid
                GROUP BY ALL ORDER BY j.aspect, j.judge_id
                """,
                {"aspects": [p[0] for p in pairs], "judges": [p[1] for p in pairs], "cid": cand[0]},
            ).df()
            d["verdicts"] = verdicts.replace({np.nan: None}).to_dict("records")
            d["aspects"] = {
                asp: float(g.score.mean())
                for asp, g in verdicts.dropna(subset=["score"]).groupby("aspect")
            }
        out[side] = d
    out["review_query"] = links.region_query(candidates=ids) if ids else {}
    return out
