"""The comparison of an evaluation's checkpoints: every figure against a hand computation.

The fixed evaluation is ``tests/evaluation_data.py`` (three checkpoints, twelve test
examples, a frozen panel of two judges per aspect, and traps the comparison must step
around: a later judge, another decoding setting, an example outside the evaluation, a
retried verdict, failed judges and a missing answer).
"""

import json

import evaluation_data as ev
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reset_core.evaluation.compare import (
    answer_pair,
    answer_pairs,
    compare,
    mean_ci,
    means,
    paired_stats,
)


@pytest.fixture
def filled(con):
    ev.fill_evaluation(con)
    return con


def row(table, **key):
    sel = table
    for k, v in key.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, key
    return sel.iloc[0]


def aspect_score(judge_aspects, example, model):
    """The hand rule: mean of the frozen judges' valid scores on that answer."""
    i = ev.MODELS.index(model)
    vals = [ev.SCORES[ja][example][i] for ja in judge_aspects if example in ev.SCORES[ja]]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


FAITH = [(ev.KP, "faithfulness"), (ev.LLM_A, "faithfulness")]
TASK = [(ev.ROUGE, "task"), (ev.LLM_A, "task")]


def test_paired_deltas_equal_hand_computed_ones(filled):
    c = compare(filled, ev.EVAL_ID)
    t = c.table
    # faithfulness, context, test_seen: RESET's (c3) verdicts both failed -> 2 pairs.
    r = row(t, aspect="faithfulness", kind="context", split="test_seen", model_id="m:reset")
    # c1: (0.9+0.9)/2 - (0.5+0.7)/2 = 0.3; c2: (0.8+1.0)/2 - (0.4+0.6)/2 = 0.4
    assert r.delta == pytest.approx((0.3 + 0.4) / 2)
    assert (r.n, r.n_missing, r.n_pairs) == (2, 1, 2)
    assert r["mean"] == pytest.approx(0.9)  # the failed verdicts are left out, not 0
    # task on instruction examples (test_seen), MTL: ROUGE-L's retried verdict on i1 is
    # the later 0.3, not the first 0.1; judge llm:late (not frozen) and the answers
    # under another setting (all scored 0) are not read.
    r = row(t, aspect="task", kind="instruction", split="test_seen", model_id="m:mtl")
    mtl = [(0.3 + 0.6) / 2, (0.5 + 0.6) / 2, (0.2 + 0.6) / 2]
    base = [(0.2 + 0.5) / 2, (0.5 + 0.5) / 2, (0.1 + 0.5) / 2]
    assert r["mean"] == pytest.approx(sum(mtl) / 3)
    assert r.delta == pytest.approx(sum(m - b for m, b in zip(mtl, base, strict=True)) / 3)
    # every group against the rule, computed independently of the SQL
    # (instruction's IFEval scores come from its verdicts: checked in the IFEval test)
    for _, r in t[~t.is_baseline & (t.aspect != "instruction")].iterrows():
        judges = [(j, r.aspect) for j in ev.JUDGES[r.aspect]]
        examples = [
            e
            for e in ev.INSTRUCTION + ev.CONTEXT
            if (e[0] == "c") == (r.kind == "context") and ev.SPLIT[e] == r.split
        ]
        pairs = []
        for e in examples:
            a = aspect_score(judges, e, r.model_id)
            b = aspect_score(judges, e, "m:base")
            if a is not None and b is not None and (e, r.model_id) not in ev.UNANSWERED:
                pairs.append(a - b)
        assert r.n_pairs == len(pairs)
        assert r.delta == pytest.approx(np.mean(pairs)), (r.aspect, r.kind, r.split)


def test_missing_answers_and_failed_judges_are_counted_never_zero(filled):
    t = compare(filled, ev.EVAL_ID).table
    # MTL never answered c6 (test_unseen): missing on task and faithfulness.
    r = row(t, aspect="task", kind="context", split="test_unseen", model_id="m:mtl")
    assert (r.n, r.n_missing) == (2, 1)
    # task on c4, c5: ROUGE-L and judge A; 0.6 = (0.7+0.5)/2, 0.2+0.6 / 2 = 0.4
    assert r["mean"] == pytest.approx(((0.7 + 0.6) / 2 + (0.2 + 0.6) / 2) / 2)
    # RESET's c3 task verdicts are fine: only faithfulness is missing there.
    r = row(t, aspect="task", kind="context", split="test_seen", model_id="m:reset")
    assert r.n_missing == 0
    # Faithfulness is not asked of instruction examples (K-Precision's n/a verdicts are
    # no votes), nor instruction of context examples.
    assert set(t[t.aspect == "faithfulness"].kind) == {"context"}
    assert set(t[t.aspect == "instruction"].kind) == {"instruction"}
    # 3 examples per (kind, split) and 3 checkpoints: x1 (outside the evaluation) is not
    # read; n + n_missing covers every example that needs the aspect.
    assert ((t.n + t.n_missing) == 3).all()
    assert len(t) == (2 * 2 + 2 + 2) * 3  # task x 4 groups, instruction x 2, faith x 2


def test_means_in_sql_are_the_comparisons_means(filled):
    t = compare(filled, ev.EVAL_ID, n_boot=0).table
    m = means(filled, ev.EVAL_ID)
    key = ["aspect", "kind", "split", "model_id"]
    got = m.set_index(key).sort_index()
    want = t.set_index(key).sort_index()
    assert list(got.index) == list(want.index)
    assert (got.n == want.n).all() and (got.n_missing == want.n_missing).all()
    assert np.allclose(got["mean"], want["mean"]) and (got.label == want.label).all()


def test_confidence_intervals_contain_the_delta_and_are_seeded(filled):
    a = compare(filled, ev.EVAL_ID, seed=7)
    b = compare(filled, ev.EVAL_ID, seed=7)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.plane, b.plane)
    t = a.table[~a.table.is_baseline & a.table.ci_low.notna()]
    assert len(t) >= 10
    assert (t.ci_low <= t.delta + 1e-12).all() and (t.delta <= t.ci_high + 1e-12).all()
    m = a.table[a.table.mean_ci_low.notna()]
    assert (m.mean_ci_low <= m["mean"] + 1e-12).all() and (
        m["mean"] <= m.mean_ci_high + 1e-12
    ).all()
    assert "BCa" in a.method and "2000 resamples" in a.method and "seed 7" in a.method
    assert "Wilcoxon" in a.method
    # On a larger vector: the same seed gives the same interval, another seed another.
    d = np.random.default_rng(3).normal(0.1, 0.2, size=60)
    s0, s0b, s1 = paired_stats(d, seed=0), paired_stats(d, seed=0), paired_stats(d, seed=1)
    assert (s0["ci_low"], s0["ci_high"]) == (s0b["ci_low"], s0b["ci_high"])
    assert (s0["ci_low"], s0["ci_high"]) != (s1["ci_low"], s1["ci_high"])
    assert s0["ci_low"] < d.mean() < s0["ci_high"]
    # the same interval scipy gives for the mean of the deltas (paired = resample rows)
    ref = stats.bootstrap(
        (d,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(0)
    ).confidence_interval
    assert (s0["ci_low"], s0["ci_high"]) == pytest.approx((ref.low, ref.high))
    assert mean_ci(np.array([0.2, 0.4]), n_boot=0) == (pytest.approx(np.nan, nan_ok=True),) * 2


def test_p_value_is_scipys_wilcoxon_on_the_same_vector(filled):
    t = compare(filled, ev.EVAL_ID).table
    r = row(t, aspect="task", kind="instruction", split="test_unseen", model_id="m:reset")
    reset = [aspect_score(TASK, e, "m:reset") for e in ("i4", "i5", "i6")]
    base = [aspect_score(TASK, e, "m:base") for e in ("i4", "i5", "i6")]
    d = np.array(reset) - np.array(base)
    assert r.p_value == stats.wilcoxon(d, alternative="two-sided").pvalue
    assert r.test == "Wilcoxon signed-rank, two-sided"
    d = np.random.default_rng(0).normal(size=40)
    assert paired_stats(d)["p_value"] == stats.wilcoxon(d).pvalue
    # equal answers scored through different judge means are a zero delta, not noise
    noisy = np.array([(0.1 + 0.5) / 2 - (0.2 + 0.4) / 2, 0.2, -0.1, 0.3])
    assert noisy[0] != 0
    assert paired_stats(noisy)["p_value"] == stats.wilcoxon([0.0, 0.2, -0.1, 0.3]).pvalue
    # NaN, with the reason, where the test cannot be computed
    zero = paired_stats(np.zeros(5))
    assert np.isnan(zero["p_value"]) and zero["test"] == "not computed: every paired delta is 0"
    assert zero["ci_low"] == zero["ci_high"] == 0.0
    one_pair = paired_stats(np.array([0.3]))
    assert np.isnan(one_pair["p_value"]) and "fewer than 2" in one_pair["test"]
    assert np.isnan(one_pair["ci_low"])
    assert (t[t.is_baseline].test == "baseline").all() and t[t.is_baseline].delta.isna().all()


def test_ifeval_four_measures_with_cis_from_crafted_verdicts(filled):
    f = compare(filled, ev.EVAL_ID).ifeval
    assert len(f) == 3 * 4

    def v(model, measure):
        return row(f, model_id=model, measure=measure)

    # base: i4 (T,F)/(T,T), i5 (F)/(T), i6 unscored at prompt level (NLTK) with title F/T
    assert v("m:base", "prompt_strict").value == 0.0
    assert v("m:base", "prompt_loose").value == 1.0
    assert v("m:base", "inst_strict").value == pytest.approx(1 / 4)
    assert v("m:base", "inst_loose").value == pytest.approx(4 / 4)
    assert v("m:base", "prompt_strict").n_prompts == 2
    assert v("m:base", "prompt_strict").n_unscored == 1
    assert v("m:base", "prompt_strict").unscored_reasons == {"needs NLTK punkt data": 1}
    # MTL: i4 (F,F)/(F,T), i5 (T)/(T), i6 title T/T
    assert v("m:mtl", "prompt_strict").value == 0.5
    assert v("m:mtl", "inst_strict").value == pytest.approx(2 / 4)
    assert v("m:mtl", "inst_loose").value == pytest.approx(3 / 4)
    # paired deltas vs base over prompts both scored
    assert v("m:mtl", "prompt_strict").delta == pytest.approx(((0 - 0) + (1 - 0)) / 2)
    assert v("m:mtl", "prompt_loose").delta == pytest.approx(((0 - 1) + (1 - 1)) / 2)
    assert v("m:mtl", "inst_strict").delta == pytest.approx(2 / 4 - 1 / 4)
    # RESET: i5's judge failed (no verdict): unscored with its reason, never failed
    r = v("m:reset", "prompt_strict")
    assert (r.value, r.n_prompts, r.n_unscored) == (1.0, 1, 2)
    assert r.unscored_reasons == {
        "no IFEval verdict (judge status: http_error)": 1,
        "needs NLTK punkt data": 1,
    }
    assert v("m:reset", "inst_strict").value == pytest.approx(3 / 3)
    # instruction-level delta over prompts both checked (i4, i6): 3/3 - 1/3
    assert v("m:reset", "inst_strict").delta == pytest.approx(1 - 1 / 3)
    # CIs over prompts contain the figure; a single prompt has no interval
    for _, r in f.iterrows():
        if not np.isnan(r.ci_low):
            assert r.ci_low - 1e-12 <= r.value <= r.ci_high + 1e-12
        if not r.is_baseline and not np.isnan(r.delta_ci_low):
            assert r.delta_ci_low - 1e-12 <= r.delta <= r.delta_ci_high + 1e-12
    assert np.isnan(v("m:reset", "prompt_strict").ci_low)
    assert v("m:mtl", "inst_loose").ci_low < v("m:mtl", "inst_loose").ci_high


def test_kprecision_is_the_knowledge_precision_judge_alone(filled):
    k = compare(filled, ev.EVAL_ID).kprecision
    assert set(zip(k.model_id, k.split, strict=True)) == {
        (m, s) for m in ev.MODELS for s in ("test_seen", "test_unseen")
    }
    r = row(k, model_id="m:reset", split="test_seen")
    assert (r["mean"], r.n, r.n_missing) == (pytest.approx((0.9 + 0.8) / 2), 2, 1)
    assert r.delta == pytest.approx(((0.9 - 0.5) + (0.8 - 0.4)) / 2)
    r = row(k, model_id="m:mtl", split="test_unseen")
    assert r["mean"] == pytest.approx((0.5 + 0.7) / 2) and r.n_missing == 1
    assert r.ci_low <= r.delta <= r.ci_high


def test_plane_points(filled):
    p = compare(filled, ev.EVAL_ID).plane.set_index("model_id")
    faith = {
        m: [aspect_score(FAITH, e, m) for e in ev.CONTEXT if (e, m) not in ev.UNANSWERED]
        for m in ev.MODELS
    }
    for m in ev.MODELS:
        vals = [x for x in faith[m] if x is not None]
        assert p.loc[m, "faithfulness"] == pytest.approx(np.mean(vals))
        assert p.loc[m, "n_faithfulness"] == len(vals)
        assert p.loc[m, "faithfulness_ci_low"] <= p.loc[m, "faithfulness"]
        assert p.loc[m, "faithfulness"] <= p.loc[m, "faithfulness_ci_high"]
    # instruction: proxy alone on i1-i3; proxy and IFEval's strict share on i4-i6
    reset = [1.0, 1.0, 1.0, (1.0 + 1.0) / 2, 0.5, (0.5 + 1.0) / 2]  # i5's IFEval failed
    assert p.loc["m:reset", "instruction"] == pytest.approx(np.mean(reset))
    assert p.loc["m:base", "is_baseline"] and not p.loc["m:reset", "is_baseline"]
    assert list(p.label) == ["base", "MTL", "RESET round 1"]
    assert np.isnan(p.loc["m:base", "delta_faithfulness"])
    assert p.loc["m:reset", "delta_faithfulness"] == pytest.approx(
        np.mean([0.9 - 0.6, 0.9 - 0.5, 0.8 - 0.4, 0.7 - 0.8, 0.7 - 0.3])
    )


def test_a_later_judge_or_rubric_never_changes_the_evaluation(filled):
    before = compare(filled, ev.EVAL_ID)
    # A new judge (say a re-registered LLM judge after a rubric edit) scores everything.
    filled.execute(
        """
        INSERT INTO judgments (judgment_id, candidate_id, example_id, judge_id, aspect, score,
                               status)
        SELECT 'new:' || candidate_id || a, candidate_id, example_id, 'llm:judge-a-v2', a,
               0.0, 'ok'
        FROM candidates, (VALUES ('task'), ('instruction'), ('faithfulness')) t(a)
        """
    )
    after = compare(filled, ev.EVAL_ID)
    pd.testing.assert_frame_equal(before.table, after.table)
    pd.testing.assert_frame_equal(before.ifeval, after.ifeval)


def test_baseline_choice_and_bad_input(filled):
    c = compare(filled, ev.EVAL_ID, baseline="m:mtl")
    assert c.baseline == "m:mtl"
    r = row(c.table, aspect="faithfulness", kind="context", split="test_seen", model_id="m:reset")
    assert r.delta == pytest.approx(((0.9 - 0.7) + (0.9 - 0.5)) / 2)
    with pytest.raises(ValueError, match="baseline: 'm:nope' is not one of the checkpoints"):
        compare(filled, ev.EVAL_ID, baseline="m:nope")
    with pytest.raises(ValueError, match="evaluation_id: no evaluation 'eval-x'"):
        compare(filled, "eval-x")
    filled.execute(
        "INSERT INTO evaluations (evaluation_id, name, config, frozen, status) "
        "VALUES ('eval-bad', 'x', '{}', '{}', 'planned')"
    )
    with pytest.raises(ValueError, match="eval-bad: frozen has no 'judges'"):
        compare(filled, "eval-bad")
    # n_boot=0: means and tests, no intervals (the trade-off view's quick read)
    quick = compare(filled, ev.EVAL_ID, n_boot=0)
    assert quick.table.ci_low.isna().all() and quick.table.p_value.notna().any()
    assert "no confidence intervals" in quick.method


def test_an_evaluation_without_answers_yet_has_empty_tables(con):
    ev.add_evaluation(con, "eval-new", status="sampling")
    c = compare(con, "eval-new")
    assert c.table.empty and c.ifeval.empty and c.kprecision.empty
    assert list(c.plane.model_id) == ev.MODELS and c.plane.instruction.isna().all()


def test_answer_pairs_windowed_and_ordered(filled):
    p = answer_pairs(filled, ev.EVAL_ID, "m:base", "m:reset")
    assert p.attrs["n_total"] == 12 and len(p) == 12
    # each example on its kind's own aspect; c3 (RESET's verdicts failed) has no delta
    assert set(p[p.kind == "context"].aspect) == {"faithfulness"}
    assert p.iloc[-1].example_id == "c3" and np.isnan(p.iloc[-1].delta)
    d = p.delta.dropna().tolist()
    assert d == sorted(d)  # b's regressions first
    r = p.set_index("example_id").loc["c2"]
    assert (r.score_a, r.score_b, r.delta) == pytest.approx((0.5, 0.9, 0.4))
    page = answer_pairs(
        filled,
        ev.EVAL_ID,
        "m:base",
        "m:reset",
        aspect="task",
        split="test_unseen",
        kind="context",
        order="-delta",
        limit=2,
        offset=1,
    )
    assert page.attrs["n_total"] == 3 and len(page) == 2
    full = answer_pairs(
        filled,
        ev.EVAL_ID,
        "m:base",
        "m:reset",
        aspect="task",
        split="test_unseen",
        kind="context",
        order="-delta",
    )
    assert page.example_id.tolist() == full.example_id.tolist()[1:3]
    assert full.delta.tolist() == sorted(full.delta.tolist(), reverse=True)
    assert len(p.set_index("example_id").loc["i1"].instruction) == 160  # a preview
    faith = answer_pairs(filled, ev.EVAL_ID, "m:base", "m:mtl", aspect="faithfulness")
    assert faith.attrs["n_total"] == 6 and set(faith.kind) == {"context"}
    far = answer_pairs(filled, ev.EVAL_ID, "m:base", "m:mtl", aspect="faithfulness", offset=10)
    assert far.empty and far.attrs["n_total"] == 6  # past the end: still counted
    by_abs = answer_pairs(filled, ev.EVAL_ID, "m:base", "m:mtl", order="abs").delta.abs()
    assert by_abs.dropna().is_monotonic_decreasing
    with pytest.raises(ValueError, match="order"):
        answer_pairs(filled, ev.EVAL_ID, "m:base", "m:reset", order="random")
    with pytest.raises(ValueError, match="b: 'm:zzz' is not one of the checkpoints"):
        answer_pairs(filled, ev.EVAL_ID, "m:base", "m:zzz")


def test_answer_pair_shows_both_answers_and_every_frozen_verdict(filled):
    d = answer_pair(filled, ev.EVAL_ID, "c3", "m:base", "m:reset")
    assert d["example"]["context"] == "Passage for c3." and d["example"]["split"] == "test_seen"
    a, b = d["a"], d["b"]
    assert a["text"] == "Answer to c3 by m:base" and b["label"] == "RESET round 1"
    assert a["aspects"] == pytest.approx({"task": 0.45, "faithfulness": 0.7})
    assert b["aspects"] == pytest.approx({"task": 0.55})  # both faithfulness judges failed
    failed = [v for v in b["verdicts"] if v["aspect"] == "faithfulness"]
    assert {v["judge_id"] for v in failed} == {ev.KP, ev.LLM_A}
    assert all(v["score"] is None and v["status"] == "parse_error" for v in failed)
    assert "llm:late" not in {v["judge_id"] for v in a["verdicts"]}
    assert d["review_query"] == {
        "candidates": f"{ev.cand('c3', 'm:base')},{ev.cand('c3', 'm:reset')}"
    }
    # a checkpoint that has not answered: no text, no verdicts
    d = answer_pair(filled, ev.EVAL_ID, "c6", "m:base", "m:mtl")
    assert d["b"]["text"] is None and d["b"]["verdicts"] == []
    with pytest.raises(ValueError, match="example_id: 'x1' is not in evaluation"):
        answer_pair(filled, ev.EVAL_ID, "x1", "m:base", "m:mtl")
    # the frozen JSON is what was read
    frozen = json.loads(
        filled.execute(
            "SELECT frozen FROM evaluations WHERE evaluation_id = ?", [ev.EVAL_ID]
        ).fetchone()[0]
    )
    assert frozen["judges"] == ev.JUDGES
