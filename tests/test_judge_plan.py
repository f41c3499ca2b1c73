"""Judging plans and their cost estimate, computed in SQL, against the per-item Python path.

The reference is what the estimate did before it moved into the database: plan every
item as a row, build each judge, render every prompt (:meth:`LLMJudge.estimate`) and
count. A hand-made database with the awkward cases (non-ASCII text and whitespace,
empty fields, failed and valid verdicts, several splits, cached requests) must give
the same figures.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from reset_core.judging.launch import (
    JudgePlan,
    create_judge_job,
    estimate_judging,
    estimate_plan,
    llm_spec,
    offline_specs,
    plan_items,
)
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig
from reset_core.judging.worker import build_judge, items_from_table
from reset_core.store import insert_arrow

SPLITS = ("seen", "test_seen", "test_unseen")
IFEVAL_META = {
    "ifeval": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
}


def _seed(con) -> None:
    """12 examples over both kinds and the three splits, 3 candidates each, some verdicts."""
    examples = []
    for i in range(12):
        kind = "context" if i % 2 else "instruction"
        examples.append(
            {
                "example_id": f"e{i:02d}",
                "instruction": [
                    "Explain tides.",
                    "Café « crème » ? 🙂",
                    "Two\u00a0words\tand\nlines",
                    "",
                ][i % 4]
                + f" #{i}",
                "context": (
                    [None, "Paris is the capital of France.", "", "Ünïcode  context\u2003here."][
                        i % 4
                    ]
                    if kind == "context"
                    else None
                ),
                "reference": ["The moon pulls the sea.", None, "", "Paris."][i % 4],
                "kind": kind,
                "source": "t",
                "split": SPLITS[i % 3],
                "content_hash": f"h{i}",
                # Two examples carry IFEval's verifiable instructions: only they go to it.
                "meta": json.dumps(IFEVAL_META) if i in (0, 4) else None,
            }
        )
    insert_arrow(con, "examples", pa.Table.from_pylist(examples))
    texts = ["Paris.", "It is Lyon,\u00a0I think. 🙂", "", "Line one\nline two  with   spaces"]
    cands = [
        {
            "candidate_id": f"c{i:02d}-{s}",
            "example_id": f"e{i:02d}",
            "model_id": "m",
            "setting_id": "s",
            "sample_index": s,
            "seed": 0,
            "text": texts[(i + s) % 4] * (1 + s),
            "engine": "test",
        }
        for i in range(12)
        for s in range(3)
    ]
    insert_arrow(con, "candidates", pa.Table.from_pylist(cands))


def _verdicts(con, judge_id: str, rows: list[tuple], status: str = "parse_error") -> None:
    """Verdicts (candidate, aspect, score): a None score has ``status``."""
    insert_arrow(
        con,
        "judgments",
        pa.Table.from_pylist(
            [
                {
                    "judgment_id": f"j-{judge_id}-{c}-{a}",
                    "candidate_id": c,
                    "example_id": c.split("-")[0],
                    "judge_id": judge_id,
                    "aspect": a,
                    "score": s,
                    "status": "ok" if s is not None else status,
                }
                for c, a, s in rows
            ]
        ),
    )


def _python_estimate(con, specs, plan: JudgePlan, cache) -> dict:
    """The former per-item estimate: every planned item rendered and counted in Python."""
    items = plan_items(con, specs, plan)
    out = {}
    for spec in specs:
        judge = build_judge(spec, cache=cache)
        mine = items.filter(pa.compute.equal(items["judge_id"], judge.judge_id))
        if isinstance(judge, LLMJudge):
            out[judge.judge_id] = vars(judge.estimate(items_from_table(mine)))
        else:
            out[judge.judge_id] = {
                "n_items": mine.num_rows,
                "n_requests": 0,
                "n_cached": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "cost_usd_max": 0.0,
            }
    return out


def _specs(con) -> list[dict]:
    base = {"base_url": "http://127.0.0.1:9/v1", "price_output_per_mtok": 0.6}
    return offline_specs() + [
        llm_spec(con, LLMJudgeConfig(model="a", price_input_per_mtok=2.5, **base)),
        llm_spec(
            con,
            LLMJudgeConfig(
                model="b",
                candidates_per_call=2,
                token_counter="words",
                price_input_per_mtok=1.0,
                **base,
            ),
        ),
        llm_spec(con, LLMJudgeConfig(model="c", candidates_per_call=3), local=True),
    ]


def _same(sql: dict, py: dict) -> None:
    assert sql.keys() == py.keys()
    for judge_id in py:
        for key, value in py[judge_id].items():
            assert sql[judge_id][key] == pytest.approx(value, rel=1e-12), (judge_id, key)


PLANS = [
    JudgePlan(),
    JudgePlan(aspects="all"),
    JudgePlan(splits=["seen", "test_seen"]),
    JudgePlan(splits=["test_unseen"], aspects="all"),
    JudgePlan(redo=True, splits=list(SPLITS)),
    JudgePlan(limit=7, splits=list(SPLITS)),
    JudgePlan(limit=40, aspects="all", splits=list(SPLITS)),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.model_dump_json(exclude_none=True))
def test_sql_estimate_equals_the_per_item_estimate(con, tmp_path, plan):
    _seed(con)
    specs = _specs(con)
    a = build_judge(specs[3]).judge_id
    # Valid verdicts leave the plan, failed ones stay in it.
    _verdicts(con, a, [("c01-0", "task", 0.5), ("c01-1", "task", None), ("c02-2", "task", 1.0)])
    _verdicts(con, "metric:rouge_l:v1", [("c00-0", "task", 0.2)])
    # "Cannot score this" is final: not planned again (a failure above is).
    _verdicts(con, "metric:rouge_l:v1", [("c03-1", "task", None)], status="not_applicable")
    cache = tmp_path / "no_cache_yet.sqlite"
    _same(estimate_plan(con, specs, plan, cache=cache), _python_estimate(con, specs, plan, cache))


@pytest.mark.parametrize("redo", [False, True])
def test_cached_requests_are_counted_as_the_worker_would_find_them(con, tmp_path, redo):
    """Requests already answered (in the cache) cost nothing, in either estimate."""
    from reset_core.judging.engine import JudgeCache

    _seed(con)
    specs = [s for s in _specs(con) if s["type"] == "llm"]
    cache = tmp_path / "cache.sqlite"
    plan = JudgePlan(redo=redo, splits=list(SPLITS), aspects="all")
    store = JudgeCache(cache)
    for spec in specs:
        judge = build_judge(spec)
        items = items_from_table(plan_items(con, [spec], plan))
        # The first few requests were answered: a valid verdict stored for their items,
        # and a candidate of the same example whose answer repeats one of them (same
        # prompt) is a cache hit although it has no verdict of its own.
        answered = judge.requests(items)[:4]
        store.put_many({r.key: {"content": "{}"} for r in answered})
        _verdicts(
            con,
            judge.judge_id,
            [(it.candidate_id, it.aspect, 0.5) for r in answered for it in r.items],
        )
    sql, py = (
        estimate_plan(con, specs, plan, cache=cache),
        _python_estimate(con, specs, plan, cache),
    )
    _same(sql, py)
    assert sum(e["n_cached"] for e in py.values()) > 0 if redo else True


def test_plan_leaves_out_what_a_judge_cannot_score(con):
    _seed(con)
    _verdicts(con, "metric:rouge_l:v1", [("c03-1", "task", None)], status="not_applicable")
    _verdicts(con, "metric:token_f1:v1", [("c03-1", "task", None)], status="timeout")
    items = plan_items(con, offline_specs(), splits=list(SPLITS)).to_pylist()
    planned = {(r["judge_id"], r["candidate_id"]) for r in items}
    assert ("metric:rouge_l:v1", "c03-1") not in planned  # it said it cannot: final
    assert ("metric:token_f1:v1", "c03-1") in planned  # a failure is judged again
    ifeval = {r["example_id"] for r in items if r["judge_id"] == "metric:ifeval:v1"}
    assert ifeval == {"e00", "e04"}  # only the examples carrying verifiable instructions
    meta = next(r["meta"] for r in items if r["judge_id"] == "metric:ifeval:v1")
    assert json.loads(meta) == IFEVAL_META


def test_splits_choose_whose_answers_are_judged(con, db_path):
    _seed(con)
    for splits in (["seen"], ["test_seen"], ["seen", "test_unseen"]):
        items = plan_items(con, offline_specs(), splits=splits)
        got = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT split FROM examples WHERE example_id IN (SELECT unnest(?))",
                [items["example_id"].to_pylist()],
            ).fetchall()
        }
        assert got == set(splits)
    with pytest.raises(ValueError, match="splits"):
        JudgePlan(splits=["train"])
    with pytest.raises(ValueError, match="splits"):
        JudgePlan(splits=[])
    # The job takes the same items, streamed into its input file.
    job = create_judge_job(con, db_path, offline_specs(), splits=["test_seen"])
    n_total = con.execute("SELECT n_total FROM jobs WHERE job_id = ?", [job]).fetchall()[0][0]
    assert n_total == plan_items(con, offline_specs(), splits=["test_seen"]).num_rows > 0
    est = estimate_plan(con, offline_specs(), splits=["test_seen"])
    assert estimate_judging(con, offline_specs(), est).n_items == n_total


def test_cli_judges_the_splits_it_is_given(db_path, capsys):
    from reset_core.cli import main
    from reset_core.store import connect

    con = connect(db_path)
    _seed(con)
    con.close()
    db = str(db_path)
    assert main(["--db", db, "judge", "--offline", "--splits", "seen,test_seen"]) == 0
    con = connect(db_path)
    splits = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT e.split FROM judgments j JOIN candidates c USING (candidate_id) "
            "JOIN examples e ON e.example_id = c.example_id"
        ).fetchall()
    }
    con.close()
    assert splits == {"seen", "test_seen"}
    assert main(["--db", db, "judge", "--offline", "--splits", "holdout", "--dry-run"]) != 0


def test_the_page_estimate_is_kept_until_the_data_changes(con, tmp_path):
    from reset_core.judging import launch

    _seed(con)
    specs, plan = offline_specs(), JudgePlan(splits=list(SPLITS))
    cache = tmp_path / "cache.sqlite"
    first = launch.estimate_plan_cached(con, specs, plan, cache=cache)
    assert first == estimate_plan(con, specs, plan, cache=cache)
    calls = []
    real = launch.estimate_plan
    launch.estimate_plan = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        assert launch.estimate_plan_cached(con, specs, plan, cache=cache) == first
        assert calls == []  # same data: not recounted
        _verdicts(con, "metric:rouge_l:v1", [("c00-0", "task", 0.4)])
        again = launch.estimate_plan_cached(con, specs, plan, cache=cache)
        assert calls == [1]  # a new verdict: recounted
        assert again["metric:rouge_l:v1"]["n_items"] == first["metric:rouge_l:v1"]["n_items"] - 1
    finally:
        launch.estimate_plan = real
