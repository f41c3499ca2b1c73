"""Judges: one contract over every kind, faults as data, cache, ledger, budget, worker job."""

from __future__ import annotations

import pyarrow as pa
import pytest

from devtools.openai_standin import FAULTS
from reset_core.aspects import ASPECTS
from reset_core.judging.base import STATUSES, JudgeItem, Judgment
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig, LocalLLMJudge
from reset_core.judging.metric_judges import METRIC_JUDGES

ITEMS = [
    JudgeItem(
        "e1", "c1", "task", "Name a primary colour.", None, "Red is one.", "instruction", "Red."
    ),
    JudgeItem(
        "e1",
        "c2",
        "instruction",
        "Answer yes or no: is ice cold?",
        None,
        "Yes.",
        "instruction",
        "Yes, it is.",
    ),
    JudgeItem(
        "e2",
        "c3",
        "faithfulness",
        "Who wrote it?",
        "Ada Lovelace wrote the notes.",
        "Ada.",
        "context",
        "Ada Lovelace wrote them in 1843.",
    ),
    JudgeItem(
        "e2",
        "c4",
        "task",
        "Who wrote it?",
        "Ada Lovelace wrote the notes.",
        None,
        "context",
        "Ada.",
    ),
    JudgeItem("e3", "c5", "faithfulness", "Say hi", None, None, "instruction", "hi"),
]


def _llm(srv, **kw) -> LLMJudgeConfig:
    base = {"model": "local-test", "base_url": srv.base_url, "timeout_s": 1.0, "max_retries": 1}
    return LLMJudgeConfig(**{"backoff_s": 0.01, **base, **kw})


@pytest.fixture(params=[*METRIC_JUDGES, "llm", "llm_multi", "local"])
def judge(request, openai_server, tiny_model_dir):
    name = request.param
    if name in METRIC_JUDGES:
        return METRIC_JUDGES[name]()
    if name == "llm":
        return LLMJudge(_llm(openai_server))
    if name == "llm_multi":
        return LLMJudge(_llm(openai_server, candidates_per_call=2))
    return LocalLLMJudge(LLMJudgeConfig(max_tokens=16), model_path=tiny_model_dir)


def test_judge_contract(judge):
    """Every judge: one Judgment per item, in order, a known status, score in [0,1] iff ok."""
    out = judge.judge(ITEMS)
    assert len(out) == len(ITEMS)
    assert {(j.candidate_id, j.aspect) for j in out} == {(i.candidate_id, i.aspect) for i in ITEMS}
    for j in out:
        assert isinstance(j, Judgment) and j.status in STATUSES
        assert j.judge_id == judge.judge_id
        assert (j.score is not None) == (j.status == "ok")
        assert j.score is None or 0.0 <= j.score <= 1.0
        if j.status != "ok":
            assert j.error  # a failure always says why
    assert set(judge.aspects) <= set(ASPECTS) and judge.description
    by = {(j.candidate_id, j.aspect): j for j in out}
    for it in ITEMS:
        if it.aspect not in judge.aspects:
            assert by[(it.candidate_id, it.aspect)].status == "not_applicable"
    if judge.kind == "metric":
        # metric judges never guess: no context / no reference is no vote
        assert by[("c5", "faithfulness")].status == "not_applicable"
        if "task" in judge.aspects:
            assert by[("c4", "task")].status == "not_applicable"
    assert judge.judge(ITEMS[:0]) == []
    # progress: never back, ends at every item; heard per item or per request
    heard: list[int] = []
    assert len(judge.judge(ITEMS, progress=heard.append)) == len(ITEMS)
    assert heard == sorted(heard) and heard[-1] == len(ITEMS)
    if judge.kind == "metric":
        assert heard == list(range(1, len(ITEMS) + 1))


def test_metric_values_by_hand():
    kp = METRIC_JUDGES["knowledge_precision"]().judge([ITEMS[2]])[0]
    # content tokens: ada, lovelac(e), wrote, 1843 -> 3 of 4 in the context
    assert kp.score == pytest.approx(0.75) and "1843" in kp.rationale
    proxy = METRIC_JUDGES["instruction_proxy"]()
    ok = proxy.judge([ITEMS[1]])[0]
    bad = proxy.judge(
        [
            JudgeItem(
                "e", "c", "instruction", ITEMS[1].instruction, None, None, "instruction", "Maybe."
            )
        ]
    )[0]
    assert ok.score == 1.0 and bad.score == pytest.approx(4 / 5)
    assert "yes or no" in bad.rationale


EXPECTED = {
    "429": "http_429",
    "500": "http_5xx",
    "503": "http_5xx",
    "timeout": "timeout",
    "reset": "connection_error",
    "truncated": "truncated",
    "schema": "schema_error",
    "range": "out_of_range",
    "empty": "empty",
    "refusal": "refusal",
    "invalid": "http_error",
    "hang": "timeout",  # a silent, open connection ends at the judge's timeout
    "echo": "http_error",
}


def _item(i: int, text: str, aspect: str = "task") -> JudgeItem:
    return JudgeItem(
        f"e{i % 3}", f"c{i}", aspect, "Explain tides.", None, "The moon.", "instruction", text
    )


def test_every_fault_is_data_and_the_run_goes_on(openai_server):
    assert set(EXPECTED) == set(FAULTS)
    items = [_item(i, f"answer [[fault:{f}]]") for i, f in enumerate(FAULTS)]
    items += [
        _item(90, "fine answer"),
        _item(91, "x [[fault:429x1]]"),
        _item(92, "y [[fault:500x1]]"),
    ]
    out = {j.candidate_id: j for j in LLMJudge(_llm(openai_server)).judge(items)}
    for i, fault in enumerate(FAULTS):
        j = out[f"c{i}"]
        assert j.status == EXPECTED[fault], (fault, j)
        assert j.score is None and j.error
    assert out["c7"].raw_score == 42  # out of range: the number is kept, the vote is not
    assert '"verdict"' in out["c6"].raw_output and "gro" in out["c5"].raw_output
    assert "refuse" in out["c9"].error and out["c9"].raw_output
    assert "429" in out["c0"].raw_output or "rate" in out["c0"].raw_output
    assert out["c0"].attempts == 2  # retried once (max_retries=1), honouring Retry-After: 0
    # transient faults recover on retry; the healthy item is unaffected
    for c in ("c90", "c91", "c92"):
        assert out[c].status == "ok" and 0 <= out[c].score <= 1
    assert out["c91"].attempts == 2


def test_warm_cache_rerun_makes_zero_requests(openai_server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    items = [_item(i, f"answer {i}") for i in range(12)] + [_item(50, "z [[fault:schema]]")]
    first = LLMJudge(_llm(openai_server), cache=cache).judge(items)
    n = openai_server.n_requests
    assert n == 13
    again = LLMJudge(_llm(openai_server), cache=cache)
    second = again.judge(items[:12])
    assert openai_server.n_requests == n  # counted at the server: nothing sent
    assert [j.score for j in second] == [j.score for j in first[:12]]
    assert all(j.cached and j.cost_usd == 0 for j in second)
    assert again.ledger.cache_hits == 12 and again.ledger.requests == 0
    # failures are not cached: the next run asks again, and only for them
    again.judge(items)
    assert openai_server.n_requests == n + 1
    # a new rubric version is a new judge: no stale verdicts from the cache
    from reset_core.judging.rubrics import Rubric

    edited = {"task": Rubric("task", 2, "Grade harshly.", 1, 10)}
    LLMJudge(_llm(openai_server), rubrics=edited, cache=cache).judge(items[:2])
    assert openai_server.n_requests == n + 3


def test_cost_estimate_matches_the_ledger(openai_server, tmp_path):
    cfg = _llm(
        openai_server,
        price_input_per_mtok=2.5,
        price_output_per_mtok=10.0,
        token_counter="words",  # what the stand-in server bills
        expected_output_tokens=6,  # words of its verdict '{"score": s, "rationale": "deterministic score s"}'
    )
    items = [_item(i, f"answer number {i} " * (i + 1), ASPECTS[i % 2]) for i in range(20)]
    judge = LLMJudge(cfg, cache=tmp_path / "c.sqlite")
    est = judge.estimate(items)
    assert openai_server.n_requests == 0  # a dry run sends nothing
    out = judge.judge(items)
    led = judge.ledger
    assert est.n_requests == led.requests == 20
    assert est.prompt_tokens == led.prompt_tokens and est.completion_tokens == led.completion_tokens
    assert est.cost_usd == pytest.approx(led.cost_usd) and led.cost_usd > 0
    assert sum(j.cost_usd for j in out) == pytest.approx(led.cost_usd)
    assert est.cost_usd_max >= est.cost_usd
    assert LLMJudge(cfg, cache=tmp_path / "c.sqlite").estimate(items).n_cached == 20


def test_budget_cap_stops_cleanly(openai_server):
    cfg = _llm(openai_server, price_input_per_mtok=1000.0, price_output_per_mtok=1000.0)
    probe = LLMJudge(cfg)
    items = [_item(i, f"answer {i}") for i in range(30)]
    one_call = probe._worst_case(probe.requests(items[:1])[0])
    judge = LLMJudge(cfg.model_copy(update={"budget_usd": one_call * 5.5, "concurrency": 2}))
    out = judge.judge(items)
    assert judge.ledger.stopped == "budget"
    assert 0 < len(out) < len(items) and all(j.status == "ok" for j in out)
    assert judge.ledger.cost_usd <= judge.ledger.budget_usd
    assert openai_server.n_requests == len(out)


def test_multi_candidate_calls_shuffle_and_store_the_order(openai_server):
    items = [_item(0, f"cand {i}") for i in range(5)]
    items = [
        JudgeItem("e", f"k{i}", "task", "Q", None, "R", "instruction", f"cand {i}")
        for i in range(5)
    ]
    out = LLMJudge(_llm(openai_server, candidates_per_call=5)).judge(items)
    assert openai_server.n_requests == 1 and all(j.status == "ok" for j in out)
    shown = out[0].permutation["shown"]
    assert sorted(shown) == [f"k{i}" for i in range(5)]
    assert [j.permutation["position"] for j in out] == list(range(5))
    assert [j.candidate_id for j in out] == shown


# ------------------------------------------------------------------ worker job


def _seed_db(con, n_per_kind: int = 3):
    from reset_core.store import insert_arrow

    ex = [(f"i{i}", "instruction", None) for i in range(n_per_kind)]
    ex += [(f"x{i}", "context", f"Paris is the capital of France {i}.") for i in range(n_per_kind)]
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": [e[0] for e in ex],
                "instruction": [f"Question {e[0]}?" for e in ex],
                "context": [e[2] for e in ex],
                "reference": ["Paris is the capital."] * len(ex),
                "kind": [e[1] for e in ex],
                "source": ["t"] * len(ex),
                "split": ["seen"] * len(ex),
                "content_hash": [e[0] for e in ex],
            }
        ),
    )
    cands = [
        (f"{e[0]}-{s}", e[0], t)
        for e in ex
        for s, t in enumerate(["Paris.", "It is Lyon, I think."])
    ]
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": [c[0] for c in cands],
                "example_id": [c[1] for c in cands],
                "model_id": ["m"] * len(cands),
                "setting_id": ["s"] * len(cands),
                "sample_index": [int(c[0][-1]) for c in cands],
                "seed": [0] * len(cands),
                "text": [c[2] for c in cands],
                "engine": ["test"] * len(cands),
            }
        ),
    )
    return len(cands)


def test_offline_job_scores_every_needed_aspect_and_resumes(con, db_path):
    from reset_core.jobs import run_worker
    from reset_core.judging.launch import create_judge_job, offline_specs, sync_judge_job
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import save_selection

    n = _seed_db(con)
    job = create_judge_job(con, db_path, offline_specs(), batch_size=5)
    work = con.execute("SELECT work_dir FROM jobs WHERE job_id=?", [job]).fetchall()[0][0]
    assert run_worker(work) == 0
    prog = sync_judge_job(con, job)
    # each candidate: task (ROUGE-L, token F1) + instruction (the proxy; IFEval votes only
    # on examples with verifiable instructions, none here) or faithfulness (K-Precision,
    # embedding support)
    n_items = 2 * n + n // 2 + 2 * (n // 2)
    assert prog["status"] == "done" and prog["n_done"] == n_items
    assert con.execute("SELECT count(*), count(score) FROM judgments").fetchall()[0] == (
        n_items,
        n_items,
    )
    # When verdicts land, the kept aspect scores the Judge page opens on are built
    # (default panel, seen split, the round's policy), current with these verdicts.
    from reset_core.scoring.queries import judge_versions

    kept = con.execute("SELECT stamp, split, n_candidates FROM aspect_scores_state").fetchall()
    assert len(kept) == 1 and kept[0][1] == "seen" and kept[0][2] > 0
    assert kept[0][0] == judge_versions(con)
    assert run_worker(work) == 0  # resume: every key is done, nothing rewritten
    sync_judge_job(con, job)
    assert con.execute("SELECT count(*) FROM judgments").fetchall()[0][0] == n_items
    sel = save_selection(con, SelectionConfig())
    assert sel.n_unrankable == 0 and sel.n_picked == 6
    picked = {
        r[0]
        for r in con.execute("SELECT candidate_id FROM selection_scores WHERE picked").fetchall()
    }
    assert all(c.endswith("-0") for c in picked)  # "Paris." beats "Lyon" on every example
    with pytest.raises(ValueError, match="nothing to judge"):
        create_judge_job(con, db_path, offline_specs())


def test_llm_job_in_a_worker_process_against_the_server(con, db_path, openai_server, tmp_path):
    import time

    from reset_core.jobs import launch
    from reset_core.judging.launch import (
        create_judge_job,
        estimate_plan,
        llm_spec,
        plan_items,
        sync_judge_job,
    )

    n = _seed_db(con, 2)
    spec = llm_spec(con, _llm(openai_server, price_input_per_mtok=1.0))
    items = plan_items(con, [spec])
    assert items.num_rows == 2 * n
    est = estimate_plan(con, [spec], cache=tmp_path / "nocache.sqlite")
    assert next(iter(est.values()))["n_requests"] == 2 * n
    job = create_judge_job(con, db_path, [spec], items=items)
    launch(con, job)
    deadline = time.time() + 120
    while (prog := sync_judge_job(con, job))["status"] == "running" and time.time() < deadline:
        time.sleep(0.3)
    assert prog["status"] == "done", prog
    assert openai_server.n_requests == 2 * n
    assert prog["ledger"][next(iter(est))]["requests"] == 2 * n
    assert con.execute("SELECT count(score) FROM judgments").fetchall()[0][0] == 2 * n
    # the judge and its rubrics are recorded
    assert con.execute("SELECT kind FROM judges").fetchall() == [("llm",)]


def test_ifeval_judge_runs_lm_evals_checks_on_the_examples_that_carry_them():
    from reset_core.evaluation.ifeval import parse_result

    meta = {
        "ifeval": {
            "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
            "kwargs": [{}, {}],
        }
    }

    def item(text, m=meta):
        return JudgeItem(
            "e",
            "c",
            "instruction",
            "Answer in lowercase, no commas.",
            None,
            None,
            "instruction",
            text,
            meta=m,
        )

    judge = METRIC_JUDGES["ifeval"]()
    both, one, none, empty, plain = judge.judge(
        [
            item("all lowercase and no comma"),
            item("lowercase, with a comma"),
            item("Upper, and a comma"),
            item("   "),
            item("anything", None),
        ]
    )
    assert (both.score, one.score, none.score, empty.score) == (1.0, 0.5, 0.0, 0.0)
    assert "not followed (strict): punctuation:no_comma" in one.rationale
    assert plain.status == "not_applicable" and plain.score is None
    # the verdict keeps strict and loose per instruction (the IFEval accuracy's input)
    assert parse_result(one.raw_output).strict == (False, True)
    assert parse_result(empty.raw_output).loose == (False, False)


def test_embedding_support_prefers_the_answer_the_context_supports():
    ctx = "The Eiffel Tower is in Paris. It was finished in 1889 for the World's Fair."
    texts = [
        "The tower stands in Paris and was completed in 1889.",
        "Bananas are rich in potassium.",
        "",
    ]
    items = [
        JudgeItem("e", f"c{i}", "faithfulness", "Where is it?", ctx, None, "context", t)
        for i, t in enumerate(texts)
    ]
    supported, unsupported, empty = METRIC_JUDGES["embedding_support"]().judge(items)
    assert supported.score > 0.6 > 0.3 > unsupported.score
    assert empty.status == "not_applicable"
    no_context = JudgeItem("e", "c", "faithfulness", "Q", None, None, "context", "Paris.")
    assert METRIC_JUDGES["embedding_support"]().judge([no_context])[0].status == "not_applicable"


def test_cli_says_when_there_is_nothing_to_judge_and_why(con, db_path, capsys):
    from reset_core.cli import main
    from reset_core.store import connect

    con.close()
    assert main(["--db", str(db_path), "judge", "--offline", "--dry-run"]) == 0
    assert "nothing to judge: no candidates yet" in capsys.readouterr().out
    con = connect(db_path)
    _seed_db(con)
    con.close()
    # every candidate judged: then the message says so (the splits are part of the plan)
    assert main(["--db", str(db_path), "judge", "--offline", "--splits", "test_unseen"]) == 0
    assert "every candidate of these splits already has a verdict" in capsys.readouterr().out
