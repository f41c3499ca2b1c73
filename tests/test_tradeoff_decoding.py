"""Trade-off points and Pareto frontier, decoding-setting analysis, judge length bias."""

import evaluation_data as ev
import pytest
from analytics_data import cid, fill
from evaluation_data import fill_evaluation

from reset_core.analytics import summaries as analytics
from reset_core.analytics.decoding import distinct_n, setting_report, suggest_grid
from reset_core.analytics.judge_bias import length_bias
from reset_core.analytics.tradeoff import model_view, pareto_frontier, tradeoff_points
from reset_core.evaluation.compare import compare
from reset_core.review import links as review_links


def test_pareto_frontier_on_a_fixed_point_set():
    pts = [
        (0.1, 0.9),  # 0 frontier (best y)
        (0.5, 0.8),  # 1 frontier
        (0.4, 0.7),  # 2 dominated by 1
        (0.8, 0.5),  # 3 frontier
        (0.8, 0.4),  # 4 dominated by 3 (same x, lower y)
        (0.9, 0.1),  # 5 frontier (best x)
        (0.5, 0.8),  # 6 tie with 1: kept
        (0.0, 0.0),  # 7 dominated
    ]
    assert pareto_frontier(pts) == [0, 1, 6, 3, 5]
    assert pareto_frontier([]) == []
    assert pareto_frontier([(0.3, 0.3)]) == [0]


@pytest.fixture
def filled(con):
    fill(con)
    analytics.ensure_fresh(con)
    return con


def test_tradeoff_per_setting_matches_hand_means(filled):
    r = tradeoff_points(filled, level="setting")
    by = {p["setting_id"]: p for p in r["points"]}
    # faithfulness of s:cold: A and B agree except B gives e5 0.5 -> (0.75 + 0.625 + 0.75) / 3
    assert by["s:cold"]["y"] == pytest.approx((0.75 + 0.625 + 0.75) / 3)
    # six judge picks; alice's veto (e1) and force (e2) move two to s:cold, at read time
    assert by["s:hot"]["x"] == 1.0 and by["s:hot"]["n_picks"] == 4
    assert by["s:cold"]["n_picks"] == 2
    assert by["s:hot"]["n_failed"] == 1  # B's failed instruction verdict, excluded
    assert [r["points"][i]["setting_id"] for i in r["frontier"]] == ["s:hot"]
    assert r["n_failed"] == 1


def test_tradeoff_per_candidate_highlights_picks_and_frontier(filled):
    r = tradeoff_points(filled, level="candidate")
    assert r["n_with_both"] == 9 and len(r["points"]) == 9  # context examples have both
    assert r["frontier_xy"] == [(1.0, 1.0)] and r["n_on_frontier"] == 3
    assert all(r["points"][i]["picked"] for i in r["frontier"])
    with pytest.raises(ValueError, match="level"):
        tradeoff_points(filled, level="galaxy")
    with pytest.raises(ValueError, match="x: must be one of"):
        tradeoff_points(filled, x="style")


def test_model_view_from_finished_evaluations_and_test_answers(filled):
    assert model_view(filled) == []
    fill_evaluation(filled)
    # An evaluation still judging is not placed.
    ev.add_evaluation(filled, "eval-running", status="judging", name="unfinished")
    analytics.ensure_fresh(filled)
    rows = model_view(filled)
    from_eval = {r["model_id"]: r for r in rows if r["source"].startswith("evaluation")}
    assert {r["evaluation_id"] for r in from_eval.values()} == {ev.EVAL_ID}
    # instruction on instruction examples, faithfulness on context examples, pooled over
    # splits; (c3, reset) and (c6, mtl) have no faithfulness score: left out, not 0.
    # base's instruction: proxy alone on i1-i3 (IFEval n/a), proxy and IFEval on i4-i6
    base_x = (1.0 + 0.5 + 0.5 + (1.0 + 0.5) / 2 + (0.5 + 0.0) / 2 + (0.0 + 0.0) / 2) / 6
    assert from_eval["m:base"]["x"] == pytest.approx(base_x)
    assert from_eval["m:base"]["y"] == pytest.approx((0.6 + 0.5 + 0.7 + 0.4 + 0.8 + 0.3) / 6)
    assert from_eval["m:reset"]["y"] == pytest.approx((0.9 + 0.9 + 0.7 + 0.8 + 0.7) / 5)
    assert from_eval["m:reset"]["n"] == 5
    assert from_eval["m:mtl"]["name"] == "MTL" and from_eval["m:mtl"]["stage"] == "mtl"
    assert from_eval["m:base"]["source"] == "evaluation base vs MTL vs RESET"
    # the same figures as the evaluation's own plane
    plane = compare(filled, ev.EVAL_ID, n_boot=0).plane.set_index("model_id")
    for m, r in from_eval.items():
        assert (r["x"], r["y"]) == pytest.approx(
            (plane.loc[m, "instruction"], plane.loc[m, "faithfulness"])
        )
    # The judged test answers (every judge and setting) are a second, separate source.
    assert {r["model_id"] for r in rows if r["source"] == "test answers"} == set(ev.MODELS)


def test_setting_report_and_suggested_grid(filled):
    rep = {r["setting_id"]: r for r in setting_report(filled)}
    # overrides applied: s:hot keeps 4 of the 6 picks, s:cold gets 2 (veto on e1, force on e2)
    assert rep["s:hot"]["pick_share"] == pytest.approx(4 / 6) and rep["s:never"]["n_picks"] == 0
    # e1's cold and hot answers are identical: one duplicate in each of those settings
    assert rep["s:cold"]["dup_rate"] == pytest.approx(1 / 6)
    assert rep["s:never"]["dup_rate"] == 0
    assert rep["s:never"]["mean_words"] == pytest.approx((3 + 1 + 1 + 2 + 1 + 2) / 6)
    # distinct-1 of s:never: tokens blue sky maybe london five sales fell babbage never floods
    assert rep["s:never"]["distinct_1"] == 1.0
    # s:cold: 24 tokens, "the" x3 + "is" x2 repeated -> 19 distinct
    assert rep["s:cold"]["distinct_1"] == pytest.approx(19 / 24)
    grid = suggest_grid(list(rep.values()))
    assert grid["drop"] == ["s:never"] and grid["keep"] == ["s:hot", "s:cold"]  # most picks first
    assert suggest_grid([])["note"].startswith("No picks")
    with pytest.raises(ValueError):
        distinct_n(filled, 0)


def test_settings_that_differ_only_in_max_tokens_are_named_apart_on_every_view(filled):
    # s:never becomes s:hot's twin but for max_tokens: a label collision before.
    filled.execute(
        "UPDATE decoding_settings SET temperature = 1.2, max_tokens = 256 "
        "WHERE setting_id = 's:never'"
    )
    want = {
        "s:cold": "T 0.2 · top-k all",
        "s:hot": "T 1.2 · top-k all · max_tokens 64",
        "s:never": "T 1.2 · top-k all · max_tokens 256",
    }
    rep = {r["setting_id"]: r["setting"] for r in setting_report(filled)}
    assert rep == want
    points = tradeoff_points(filled, level="setting")["points"]
    assert {p["setting_id"]: p["setting"] for p in points} == want
    cands = tradeoff_points(filled, level="candidate")["points"]
    assert {p["setting_id"]: p["setting"] for p in cands} == {
        k: v for k, v in want.items() if k in {p["setting_id"] for p in cands}
    }


def test_length_bias_per_judge_and_aspect(filled):
    rows = {(r["judge_id"], r["aspect"]): r for r in length_bias(filled)}
    assert set(rows) == {
        (j, a) for j in ("judge:a", "judge:b") for a in ("task", "instruction", "faithfulness")
    }
    rho = rows[("judge:a", "faithfulness")]["rho"]
    assert rho.n == 9 and rho.value > 0.9  # longer answers scored higher in this data


def test_summaries_refresh_when_data_changes(filled):
    assert analytics.is_fresh(filled)
    filled.execute("DELETE FROM judgments WHERE judge_id = 'judge:b'")
    assert not analytics.is_fresh(filled)
    analytics.ensure_fresh(filled)
    assert analytics.missing_summary(filled)["by_judge"].keys() == {"judge:a"}


def test_new_review_events_refresh_only_the_review_summaries(filled):
    from reset_core.analytics import agreement

    assert agreement.judge_vs_human(filled, "task")["judge:a"]["spearman"].n == 4
    built = analytics.state(filled)["refreshed_at"]
    filled.execute(
        "INSERT INTO overrides (event_id, example_id, candidate_id, action, value, reviewer) "
        """VALUES ('o:new', 'e6', ?, 'score', '{"aspect": "task", "score": 0.25}', 'dora')""",
        [cid("e6", "s:cold")],
    )
    assert not analytics.is_fresh(filled)
    analytics.ensure_fresh(filled)
    assert analytics.is_fresh(filled)
    assert analytics.state(filled)["refreshed_at"] == built, "the big summaries were kept"
    assert agreement.judge_vs_human(filled, "task")["judge:a"]["spearman"].n == 5
    link = review_links.parse(review_links.disagreement_query("human", "judge:a", "task", 0.5))
    assert review_links.linked_in(filled, link, ["e6"]) == {"e6": [(cid("e6", "s:cold"), 0.5)]}


def test_review_links_round_trip(filled):
    q = review_links.region_query(setting=["s:hot"], split="seen")
    sel = review_links.parse(q)
    assert review_links.counts(filled, sel) == {"candidates": 6, "examples": 6}
    linked = review_links.linked_in(filled, sel, ["e1", "e2", "e9"])
    assert linked == {"e1": [(cid("e1", "s:hot"), None)], "e2": [(cid("e2", "s:hot"), None)]}
    q = review_links.region_query(candidates=[cid("e1", "s:cold"), cid("e1", "s:hot")])
    assert review_links.counts(filled, review_links.parse(q)) == {"candidates": 2, "examples": 1}
    assert review_links.counts(filled, review_links.parse({"kind": "context", "split": "x"})) == {
        "candidates": 0,
        "examples": 0,
    }
    assert review_links.parse({}) is None
    with pytest.raises(ValueError, match="disagree"):
        review_links.parse({"judge_a": "a", "judge_b": "b", "aspect": "task", "disagree": "x"})
