"""Agreement statistics: hand-computed values, the reference libraries, degenerate data."""

import math

import krippendorff
import numpy as np
import pytest
from analytics_data import HUMAN_TASK, cid, fill
from panel_data import fill_two_panels
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from reset_core.analytics import agreement as ag
from reset_core.analytics.summaries import ensure_fresh, missing_summary
from reset_core.review import links as review_links
from reset_core.store import connect


def test_pair_stats_match_hand_computed_values():
    # 2 bins: po = 3/4, pe = .5*.25 + .5*.75 = .5 -> kappa = .5 (= quadratic with 2 bins);
    # midranks a [1.5,1.5,3.5,3.5], b [1,3,3,3] -> rho = 2/sqrt(12);
    # tau-b: C=2, D=0, n0=6, ties a=2, b=3 -> 2/sqrt(4*3)
    r = ag.pair_stats([0, 0, 1, 1], [0, 1, 1, 1], n_bins=2, n_boot=50)
    assert r["kappa"].value == pytest.approx(0.5)
    assert r["qwk"].value == pytest.approx(0.5)
    assert r["spearman"].value == pytest.approx(2 / math.sqrt(12))
    assert r["kendall"].value == pytest.approx(2 / math.sqrt(12))
    assert all(s.n == 4 for s in r.values())


def test_alpha_matches_hand_computed_value():
    # coincidences o[0,0]=2, o[.5,.5]=2, o[.75,1]=o[1,.75]=1; D_o=.125, D_e=9.625, n=6
    r = ag.alpha_stats([[0.0, 0.0], [0.5, 0.5], [1.0, 0.75]], n_boot=20)
    assert r["alpha_interval"].value == pytest.approx(1 - 5 * 0.125 / 9.625)


def _random_pairs(seed=3, n=400, continuous=False):
    rng = np.random.default_rng(seed)
    if continuous:
        a = rng.random(n)
        return a, np.clip(a + rng.normal(0, 0.2, n), 0, 1)
    a = rng.integers(0, 5, n) / 4
    return a, np.clip(a + rng.integers(-1, 2, n) / 4, 0, 1)


@pytest.mark.parametrize("continuous", [False, True])
def test_pair_stats_match_reference_libraries(continuous):
    a, b = _random_pairs(continuous=continuous)
    r = ag.pair_stats(a, b, n_boot=50)
    ab, bb = np.minimum((a * 5).astype(int), 4), np.minimum((b * 5).astype(int), 4)
    assert r["kappa"].value == pytest.approx(cohen_kappa_score(ab, bb))
    assert r["qwk"].value == pytest.approx(
        cohen_kappa_score(ab, bb, labels=range(5), weights="quadratic")
    )
    assert r["spearman"].value == pytest.approx(stats.spearmanr(a, b).statistic)
    assert r["kendall"].value == pytest.approx(stats.kendalltau(a, b).statistic)
    for s in r.values():
        lo, hi = s.ci
        assert lo <= s.value <= hi and s.n == len(a)


@pytest.mark.parametrize("continuous", [False, True])
def test_bootstrap_replicates_equal_the_libraries_on_the_same_resample(continuous):
    """The vectorised resampled statistics are the library statistics, resample by resample."""
    a, b = _random_pairs(continuous=continuous, n=200)
    idx = np.random.default_rng(7).integers(0, len(a), size=(3, len(a)))
    ab, bb = np.minimum((a * 5).astype(int), 4), np.minimum((b * 5).astype(int), 4)
    g = np.arange(5)
    kap = ag._kappa_batch(ab[idx], bb[idx], 5, 1 - np.eye(5))
    qwk = ag._kappa_batch(ab[idx], bb[idx], 5, (g[:, None] - g[None, :]) ** 2)
    ranks = ag._rank_batches(a, b, idx)
    for i, row in enumerate(idx):
        assert kap[i] == pytest.approx(cohen_kappa_score(ab[row], bb[row], labels=range(5)))
        assert qwk[i] == pytest.approx(
            cohen_kappa_score(ab[row], bb[row], labels=range(5), weights="quadratic")
        )
        assert ranks["spearman"][i] == pytest.approx(stats.spearmanr(a[row], b[row]).statistic)
        assert ranks["kendall"][i] == pytest.approx(stats.kendalltau(a[row], b[row]).statistic)


def test_alpha_matches_krippendorff_package_with_missing_values_and_its_replicates():
    rng = np.random.default_rng(5)
    a, b = _random_pairs(n=300)
    c = np.where(rng.random(300) < 0.3, np.nan, a)
    m = np.vstack([a, b, c]).T
    values = np.unique(m[np.isfinite(m)])
    r = ag.alpha_stats(m, n_boot=50)
    for level in ("interval", "ordinal"):
        ref = krippendorff.alpha(
            reliability_data=m.T, value_domain=values, level_of_measurement=level
        )
        assert r[f"alpha_{level}"].value == pytest.approx(ref)
        lo, hi = r[f"alpha_{level}"].ci
        assert lo <= ref <= hi
    # one resample through the vectorised formula vs the package on the expanded data
    row = rng.integers(0, 300, 300)
    counts = np.stack([(m == v).sum(axis=1) for v in values], axis=1).astype(float)
    o = counts[:, :, None] * counts[:, None, :]
    o[:, np.arange(len(values)), np.arange(len(values))] -= counts
    o /= (counts.sum(axis=1) - 1)[:, None, None]
    w = np.bincount(row, minlength=300)[None, :].astype(float)
    for level in ("interval", "ordinal"):
        ref = krippendorff.alpha(
            reliability_data=m[row].T, value_domain=values, level_of_measurement=level
        )
        assert ag._alpha_batch(o, w, values, level)[0] == pytest.approx(ref)


@pytest.mark.parametrize(
    "a, b, why",
    [
        ([], [], "no item"),
        ([0.5], [0.75], "only one item"),
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "constant"),
        ([np.nan, np.nan], [0.5, 0.25], "no item"),
    ],
)
def test_degenerate_pairs_give_a_reason_never_nan(a, b, why):
    for s in ag.pair_stats(a, b, n_boot=20).values():
        assert s.value is None and s.ci is None and why in s.note


def test_one_constant_rater_gives_reason_for_rank_statistics():
    r = ag.pair_stats([0.5, 0.5, 0.5], [0.25, 0.5, 0.75], n_boot=20)
    assert r["spearman"].value is None and "constant" in r["spearman"].note
    assert r["kendall"].value is None
    for s in r.values():
        assert s.value is None or math.isfinite(s.value)


@pytest.mark.parametrize(
    "m, why",
    [
        (np.empty((0, 1)), "only one rater"),
        ([[0.5, np.nan], [np.nan, 0.5]], "no item"),
        ([[0.5, 0.25]], "only one item"),
        ([[0.5, 0.5], [0.5, 0.5]], "every score is 0.5"),
    ],
)
def test_degenerate_alpha(m, why):
    for s in ag.alpha_stats(m, n_boot=10).values():
        assert s.value is None and why in s.note


# ----------------------------------------------------------------------------- database
@pytest.fixture
def filled(con):
    fill(con)
    ensure_fresh(con)
    return con


def test_judge_agreement_on_the_database_equals_the_libraries(filled):
    r = ag.judge_agreement(filled, "task")
    assert r.judges == ["judge:a", "judge:b"] and r.n_units == 18 and not r.notes
    a, b = [], []
    from analytics_data import JUDGE_A, JUDGE_B

    for key, v in sorted(JUDGE_A.items()):
        if key[2] == "task":
            a.append(v)
            b.append(JUDGE_B[key])
    stat = r.pairs[("judge:a", "judge:b")]
    assert stat["spearman"].value == pytest.approx(stats.spearmanr(a, b).statistic)
    assert stat["kendall"].n == 18
    instr = ag.judge_agreement(filled, "instruction")
    assert instr.pairs[("judge:a", "judge:b")]["kappa"].n == 17  # B's failed verdict excluded
    assert missing_summary(filled, "instruction")["n_failed"] == 1


def test_one_judge_only(con):
    fill(con, judges=("judge:a",))
    ensure_fresh(con)
    r = ag.judge_agreement(con, "task")
    assert r.pairs == {} and "Only one judge" in r.notes[0]
    assert all(s.value is None for s in r.alpha.values())


def test_everything_missing(con):
    fill(con, humans=False)
    con.execute("UPDATE judgments SET score = NULL, status = 'timeout'")
    ensure_fresh(con)
    r = ag.judge_agreement(con, "task")
    assert r.judges == [] and "No valid task scores" in r.notes[0]
    assert r.missing["n_failed"] == 36 and r.missing["n_valid"] == 0
    assert ag.judge_vs_human(con, "task") == {}
    assert ag.human_vs_human(con, "task")["note"] == "No manual scores yet."


def test_single_example(con):
    fill(con, humans=False)
    con.execute("DELETE FROM judgments WHERE candidate_id <> ?", [cid("e1", "s:hot")])
    ensure_fresh(con)
    r = ag.judge_agreement(con, "task")
    stat = r.pairs[("judge:a", "judge:b")]["qwk"]
    assert stat.value is None and stat.n == 1 and "only one item" in stat.note


def test_human_scores_use_latest_event_and_ignore_undone(filled):
    rows = ag.human_scores(filled, "task")
    assert len(rows) == len(HUMAN_TASK)  # carol's undone score is gone
    assert (cid("e4", "s:hot"), "alice", 0.5) in rows  # the later score wins


def test_judge_vs_human_and_human_vs_human(filled):
    jvh = ag.judge_vs_human(filled, "task")
    # human mean per candidate: .75, 1.0, .125, .5; judge A: .75 (e1 cold), 1.0, .25, 1.0
    human = [0.75, 1.0, 0.125, 0.5]
    judge_a = [0.75, 1.0, 0.25, 1.0]
    assert jvh["judge:a"]["spearman"].value == pytest.approx(
        stats.spearmanr(judge_a, human).statistic
    )
    assert jvh["judge:a"]["spearman"].n == 4
    hh = ag.human_vs_human(filled, "task")
    assert hh["reviewers"] == ["alice", "carol"]
    alice, carol = [0.75, 1.0, 0.25, 0.5], [0.75, 1.0, 0.0, 0.5]
    qwk = hh["pairs"][("alice", "carol")]["qwk"]
    bins = lambda x: np.minimum((np.array(x) * 5).astype(int), 4)  # noqa: E731
    assert qwk.value == pytest.approx(
        cohen_kappa_score(bins(alice), bins(carol), labels=range(5), weights="quadratic")
    )


def test_judge_vs_vetoes_and_forced_picks(filled):
    picks = ag.judge_vs_human_picks(filled)
    # veto of e1's s:hot: both judges scored it highest (1.0): neither sides with alice.
    # force of e2's s:cold: judges scored s:hot higher: neither sides with alice.
    assert picks[("judge:a", "task")].value == 0.0 and picks[("judge:a", "task")].n == 2
    # judge B agrees once alice's veto has a better alternative in its eyes
    # (judge B re-judged it: a new, later verdict supersedes the old one)
    filled.execute(
        "INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, status, "
        "created_at) VALUES ('j:rejudged', ?, 'judge:b', 'task', 0.0, 'ok', "
        "now() + INTERVAL 1 SECOND)",
        [cid("e1", "s:hot")],
    )
    ensure_fresh(filled)
    assert ag.judge_vs_human_picks(filled)[("judge:b", "task")].value == 0.5


def test_disagreement_links_name_exactly_the_pairs_beyond_the_gap(filled):
    def link(a, b, gap, aspect="task"):
        return review_links.parse(review_links.disagreement_query(a, b, aspect, gap))

    sel = link("judge:a", "judge:b", 0.25)
    assert review_links.counts(filled, sel) == {"candidates": 3, "examples": 3}
    # 0.75 - 0.5 is a gap of 0.25 up to rounding: it counts
    assert review_links.linked_in(filled, sel, [f"e{i}" for i in range(1, 7)]) == {
        "e2": [(cid("e2", "s:cold"), pytest.approx(0.25))],
        "e3": [(cid("e3", "s:hot"), pytest.approx(0.5))],
        "e4": [(cid("e4", "s:never"), pytest.approx(0.25))],
    }
    assert review_links.counts(filled, link("judge:b", "judge:a", 0.25))["candidates"] == 3
    assert review_links.counts(filled, link("judge:a", "judge:b", 0.5))["candidates"] == 1
    human = link("judge:a", "human", 0.5)
    assert review_links.linked_in(filled, human, ["e1", "e2", "e3", "e4"]) == {
        "e4": [(cid("e4", "s:hot"), pytest.approx(0.5))]
    }
    assert review_links.counts(filled, link("human", "judge:a", 0.5))["candidates"] == 1
    with pytest.raises(ValueError, match="aspect"):
        review_links.disagreement_query("judge:a", "judge:b", "style")
    with pytest.raises(ValueError, match="disagree: must be in"):
        review_links.parse({"judge_a": "a", "judge_b": "b", "aspect": "task", "disagree": "2"})


def test_agreement_matrix_is_symmetric_with_human(filled):
    r = ag.judge_agreement(filled, "task")
    raters, cells = ag.agreement_matrix(r, "qwk", ag.judge_vs_human(filled, "task"))
    assert raters == ["judge:a", "judge:b", "human"]
    assert cells[0][1] is cells[1][0] and cells[0][0] is None
    assert cells[2][0].n == 4


def test_the_offline_panel_gives_every_aspect_two_judges_on_the_demo(con, db_path):
    """With no API key, the demo's Agreement page compares two judges on every aspect.

    Demo examples with two answers each (the reference, and another
    example's reference: a good and an off-topic answer), judged by the default offline
    panel in its worker: each aspect has two judges scoring the same candidates, and
    their rank correlation is defined (not "needs two judges").
    """
    import random

    import pyarrow as pa

    from reset_core.ingest.demo import load_demo
    from reset_core.jobs import run_here
    from reset_core.judging.launch import create_judge_job, offline_specs, sync_judge_job
    from reset_core.store import insert_arrow

    load_demo(con)
    rows = con.execute(  # a dozen seen examples of each source keeps the test quick
        "SELECT example_id, coalesce(reference, instruction) FROM examples WHERE split = 'seen' "
        "QUALIFY row_number() OVER (PARTITION BY source ORDER BY example_id) <= 12 "
        "ORDER BY example_id"
    ).fetchall()
    rng = random.Random(0)
    answers = [r[1] for r in rows]
    insert_arrow(
        con,
        "candidates",
        pa.Table.from_pylist(
            [
                {
                    "candidate_id": f"{ex}-{s}",
                    "example_id": ex,
                    "model_id": "m",
                    "setting_id": "s",
                    "sample_index": s,
                    "seed": 0,
                    "text": ref if s == 0 else rng.choice(answers),
                    "engine": "test",
                }
                for ex, ref in rows
                for s in range(2)
            ]
        ),
    )
    job = create_judge_job(con, db_path, offline_specs())
    assert run_here(con, job) == 0
    assert sync_judge_job(con, job)["status"] == "done"
    ensure_fresh(con)
    for aspect in ("task", "instruction", "faithfulness"):
        report = ag.judge_agreement(con, aspect, n_boot=20)
        assert len(report.judges) == 2, (aspect, report.judges, report.notes)
        (stats,) = report.pairs.values()
        assert stats["spearman"].value is not None and stats["spearman"].n >= 20, aspect


# ----------------------------------------------------------------------------- panel vs panel
def test_compare_panels_counts_same_and_changed_picks_by_hand(con):
    from reset_core.scoring.config import SelectionConfig

    fill_two_panels(con)
    r = ag.compare_panels(
        con, SelectionConfig(panel="only-j1"), SelectionConfig(panel="only-j2"), "J1", "J2"
    )
    # e1, e3 alike; e2 swapped; e4 picked by J1 only -> 2 of 4 examples alike
    assert (r.n_examples, r.n_same, r.n_changed, r.only_a, r.only_b) == (4, 2, 2, 1, 0)
    assert r.overlap == pytest.approx(0.5)
    changed = r.changed
    assert list(changed["example_id"]) == ["e2", "e4"]
    assert list(changed["pick_a"]) == ["e2a", "e4a"]
    assert changed["pick_b"].iloc[0] == "e2b" and changed["pick_b"].isna().iloc[1]
    assert [sorted(c) for c in changed["candidates"]] == [["e2a", "e2b"], ["e4a"]]
    # a Review link to the changed examples' picks
    q = review_links.region_query(list(changed["candidates"].iloc[0]))
    assert sorted(review_links.parse(q)["candidates"]) == ["e2a", "e2b"]
    # A panel against itself: every example alike.
    same = ag.compare_panels(
        con, SelectionConfig(panel="only-j1"), SelectionConfig(panel="only-j1")
    )
    assert (same.n_examples, same.n_same, same.n_changed, same.overlap) == (4, 4, 0, 1.0)
    assert same.changed.empty


def test_agreement_page_compares_two_saved_panels_and_opens_the_changes_in_review(app):
    con = connect(app.db)
    fill_two_panels(con)
    con.close()
    at = app.switch_page("pages/agreement.py").run()
    assert not at.exception
    assert at.selectbox(key="cmp_panel_a").options == ["default", "only-j1", "only-j2"]
    at.selectbox(key="cmp_panel_a").select("only-j1")
    at.selectbox(key="cmp_panel_b").select("only-j2").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Overlap"] == "50.0%"
    assert metrics["Same pick"] == "2 / 4"
    assert metrics["Examples that change"] == "2"
    shown = at.dataframe[-1].value  # the changed examples close the page
    assert list(shown["example_id"]) == ["e2", "e4"]
    at.selectbox(key="cmp_example").select_index(1)  # e2 only
    at.button(key="cmp_open").click().run()
    assert not at.exception
    assert at.title[0].value == "Review"
    assert sorted(at.query_params["candidates"].split(",")) == ["e2a", "e2b"]


@pytest.mark.parametrize(
    "options",
    [{}, {"weight": 0.0}, {"preset": "reset_s"}, {"preset": "custom", "top_k": 2}],
)
def test_judge_picks_are_the_picks_of_a_full_scoring(con, options):
    """The comparison's fast path picks exactly what score_candidates marks as picked."""
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import judge_picks, score_candidates

    fill_two_panels(con)
    for panel in ("default", "only-j1", "only-j2"):
        cfg = SelectionConfig(panel=panel, **options)
        full = score_candidates(con, cfg)
        want = {
            (e, c)
            for e, c, p in zip(
                *full.select(["example_id", "candidate_id", "picked"]).to_pydict().values(),
                strict=True,
            )
            if p
        }
        got = set(zip(*judge_picks(con, cfg).to_pydict().values(), strict=True))
        assert got == want and got
