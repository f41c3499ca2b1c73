"""A small, fixed evaluation: every figure of the comparison tests is computable by hand.

The tables ``reset_core.evaluation.launch`` fills (``evaluations`` with its ``frozen``
panel and setting, ``evaluation_examples``, ``evaluation_checkpoints``) are written
directly, with the answers (``candidates``) and verdicts (``judgments``) an evaluation's
sampling and judging jobs would have made. Page tests reuse :func:`fill_evaluation`.

Three checkpoints (``m:base`` = baseline, ``m:mtl``, ``m:reset``) answer twelve test
examples under the frozen greedy setting:

- instruction examples ``i1``–``i3`` (test_seen) and IFEval prompts ``i4``–``i6``
  (test_unseen, source ``ifeval``, with instruction ids in ``meta``);
- context examples ``c1``–``c3`` (test_seen) and ``c4``–``c6`` (test_unseen).

The frozen panel: task = ROUGE-L + LLM judge A; instruction = instruction proxy +
IFEval; faithfulness = K-Precision + LLM judge A. Scores are in :data:`SCORES`. Traps
the comparison must step around, each a test:

- judge ``llm:late`` (not in the frozen panel) scored everything 0;
- every checkpoint also answered under another setting (``s:eval-hot``), judged 0;
- ``x1`` (not in the evaluation) has answers and verdicts;
- ROUGE-L's verdict on ``(i1, m:mtl)`` was first 0.1, then retried to 0.3 (latest wins);
- K-Precision failed on ``(c3, m:reset)`` and LLM judge A failed on it too: no score,
  counted missing; ``m:mtl`` never answered ``c6``: missing too.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa

from reset_core.evaluation.config import GREEDY, EvalConfig
from reset_core.evaluation.ifeval import IFEvalResult
from reset_core.store import insert_arrow

EVAL_ID = "eval-20260101-000000-abcdef"
SETTING = GREEDY.setting_id
CHECKPOINTS = [("m:base", "base"), ("m:mtl", "MTL"), ("m:reset", "RESET round 1")]
MODELS = [m for m, _ in CHECKPOINTS]
ROUGE, LLM_A, PROXY, IFEVAL, KP = (
    "metric:rouge_l:v1",
    "llm:judge-a",
    "metric:instruction_proxy:v2",
    "metric:ifeval:v1",
    "metric:knowledge_precision:v1",
)
JUDGES = {"task": [ROUGE, LLM_A], "instruction": [PROXY, IFEVAL], "faithfulness": [KP, LLM_A]}
SPECS = {
    ROUGE: {"type": "metric", "name": "rouge_l"},
    PROXY: {"type": "metric", "name": "instruction_proxy"},
    IFEVAL: {"type": "metric", "name": "ifeval"},
    KP: {"type": "metric", "name": "knowledge_precision"},
    LLM_A: {
        "type": "llm",
        "config": {"model": "judge-a"},
        "rubrics": {
            "task": {"aspect": "task", "version": 2, "text": "Rate the answer 1-10."},
            "faithfulness": {"aspect": "faithfulness", "version": 1, "text": "Is it grounded?"},
        },
    },
}

INSTRUCTION = ["i1", "i2", "i3", "i4", "i5", "i6"]
CONTEXT = ["c1", "c2", "c3", "c4", "c5", "c6"]
SPLIT = {e: "test_seen" if e[1] in "123" else "test_unseen" for e in INSTRUCTION + CONTEXT}
IFEVAL_PROMPTS = ["i4", "i5", "i6"]

# (judge, aspect) -> example -> (base, mtl, reset); None = the judge failed (NULL score).
SCORES: dict[tuple[str, str], dict[str, tuple]] = {
    (ROUGE, "task"): {
        "i1": (0.2, 0.3, 0.4),
        "i2": (0.5, 0.5, 0.6),
        "i3": (0.1, 0.2, 0.1),
        "i4": (0.3, 0.3, 0.3),
        "i5": (0.4, 0.6, 0.5),
        "i6": (0.2, 0.1, 0.4),
        "c1": (0.6, 0.6, 0.7),
        "c2": (0.3, 0.5, 0.5),
        "c3": (0.4, 0.4, 0.4),
        "c4": (0.5, 0.7, 0.6),
        "c5": (0.2, 0.2, 0.3),
        "c6": (0.4, None, 0.5),
    },
    (LLM_A, "task"): {e: (0.5, 0.6, 0.7) for e in INSTRUCTION + CONTEXT},
    (PROXY, "instruction"): {
        "i1": (1.0, 1.0, 1.0),
        "i2": (0.5, 1.0, 1.0),
        "i3": (0.5, 0.5, 1.0),
        "i4": (1.0, 0.5, 1.0),
        "i5": (0.5, 0.5, 0.5),
        "i6": (0.0, 1.0, 0.5),
    },
    (KP, "faithfulness"): {
        "c1": (0.5, 0.6, 0.9),
        "c2": (0.4, 0.4, 0.8),
        "c3": (0.6, 0.7, None),
        "c4": (0.3, 0.5, 0.6),
        "c5": (0.7, 0.7, 0.7),
        "c6": (0.2, None, 0.6),
    },
    (LLM_A, "faithfulness"): {
        "c1": (0.7, 0.8, 0.9),
        "c2": (0.6, 0.6, 1.0),
        "c3": (0.8, 0.8, None),
        "c4": (0.5, 0.5, 0.8),
        "c5": (0.9, 0.9, 0.9),
        "c6": (0.4, None, 0.8),
    },
}
#: (example, model) pairs with no answer at all (the checkpoint never answered).
UNANSWERED = {("c6", "m:mtl")}

#: IFEval verdicts (raw_output) per prompt and checkpoint; strict/loose per instruction.
IFEVAL_IDS = {
    "i4": ("punctuation:no_comma", "length_constraints:number_words"),
    "i5": ("change_case:english_lowercase",),
    "i6": ("detectable_format:title", "length_constraints:number_sentences"),
}
_PUNKT = {"length_constraints:number_sentences": "needs NLTK punkt data"}
IFEVAL_RESULTS: dict[tuple[str, str], IFEvalResult | None] = {
    ("i4", "m:base"): IFEvalResult(IFEVAL_IDS["i4"], (True, False), (True, True)),
    ("i4", "m:mtl"): IFEvalResult(IFEVAL_IDS["i4"], (False, False), (False, True)),
    ("i4", "m:reset"): IFEvalResult(IFEVAL_IDS["i4"], (True, True), (True, True)),
    ("i5", "m:base"): IFEvalResult(IFEVAL_IDS["i5"], (False,), (True,)),
    ("i5", "m:mtl"): IFEvalResult(IFEVAL_IDS["i5"], (True,), (True,)),
    ("i5", "m:reset"): None,  # the judge failed: no verdict, an unscored prompt
    # i6's sentence check needs NLTK data: unscored at prompt level, title still counts
    ("i6", "m:base"): IFEvalResult(IFEVAL_IDS["i6"], (False, None), (True, None), _PUNKT),
    ("i6", "m:mtl"): IFEvalResult(IFEVAL_IDS["i6"], (True, None), (True, None), _PUNKT),
    ("i6", "m:reset"): IFEvalResult(IFEVAL_IDS["i6"], (True, None), (True, None), _PUNKT),
}

T0 = datetime(2026, 1, 1, 12, 0, 0)


def cand(example: str, model: str, setting: str = SETTING) -> str:
    return f"c:{example}:{model}:{setting}"


def _examples(extra: list[str]) -> pa.Table:
    ids = INSTRUCTION + CONTEXT + extra
    return pa.Table.from_pylist(
        [
            {
                "example_id": e,
                "instruction": f"Question {e}: please answer."
                + (" " + "x" * 200 if e == "i1" else ""),
                "context": f"Passage for {e}." if e.startswith("c") else None,
                "reference": f"Reference answer {e}.",
                "kind": "context" if e.startswith("c") else "instruction",
                "source": "ifeval" if e in IFEVAL_PROMPTS else "demo",
                "split": SPLIT.get(e, "test_seen"),
                "content_hash": e,
                "meta": json.dumps(
                    {"ifeval": {"instruction_id_list": list(IFEVAL_IDS[e]), "kwargs": [{}] * 2}}
                )
                if e in IFEVAL_PROMPTS
                else None,
            }
            for e in ids
        ]
    )


def frozen() -> dict:
    """The ``frozen`` JSON an evaluation records (create_evaluation's shape)."""
    return {
        "panel": {"name": "default", "judges": JUDGES},
        "judges": JUDGES,
        "specs": SPECS,
        "decoding": json.loads(GREEDY.model_dump_json()),
        "setting_id": SETTING,
        "tests": {"splits": ["test_seen", "test_unseen"], "kinds": [], "sources": []},
    }


def add_evaluation(
    con,
    evaluation_id: str = EVAL_ID,
    *,
    checkpoints=CHECKPOINTS,
    examples: list[str] | None = None,
    status: str = "done",
    experiment_id: str | None = None,
    name: str = "base vs MTL vs RESET",
    created_at: datetime = T0,
) -> None:
    """Record an evaluation over ``examples`` (default: all twelve) and ``checkpoints``."""
    examples = examples or INSTRUCTION + CONTEXT
    cfg = EvalConfig(checkpoints=[m for m, _ in checkpoints], name=name)
    con.execute(
        "INSERT INTO evaluations (evaluation_id, name, config, frozen, status, experiment_id, "
        "created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            evaluation_id,
            name,
            cfg.model_dump_json(),
            json.dumps(frozen()),
            status,
            experiment_id,
            created_at,
            created_at + timedelta(minutes=5) if status == "done" else None,
        ],
    )
    insert_arrow(
        con,
        "evaluation_examples",
        pa.table({"evaluation_id": [evaluation_id] * len(examples), "example_id": examples}),
    )
    insert_arrow(
        con,
        "evaluation_checkpoints",
        pa.table(
            {
                "evaluation_id": [evaluation_id] * len(checkpoints),
                "model_id": [m for m, _ in checkpoints],
                "position": list(range(len(checkpoints))),
                "label": [label for _, label in checkpoints],
            }
        ),
    )


def fill_evaluation(con, evaluation_id: str = EVAL_ID, **kw) -> str:
    """Write the whole fixed evaluation (data, answers, verdicts, the evaluation row)."""
    con.execute(
        "INSERT OR IGNORE INTO models (model_id, name, stage) VALUES "
        "('m:base', 'SmolLM2', 'base'), ('m:mtl', 'SmolLM2 MTL', 'mtl'), "
        "('m:reset', 'SmolLM2 RESET', 'reset')"
    )
    con.execute(
        "INSERT INTO decoding_settings VALUES (?, 0.0, -1, 1.0, 256, 0, 1), "
        "('s:eval-hot', 1.0, -1, 1.0, 256, 0, 1)",
        [SETTING],
    )
    insert_arrow(con, "examples", _examples(["x1"]))
    con.execute(
        "INSERT INTO judges (judge_id, name, kind, config) VALUES "
        + ", ".join(["(?, ?, ?, ?)"] * (len(SPECS) + 1)),
        [
            v
            for j, spec in [*SPECS.items(), ("llm:late", {"type": "llm"})]
            for v in (
                j,
                j.split(":")[1],
                "metric" if j.startswith("metric") else "llm",
                json.dumps(spec),
            )
        ],
    )
    cands, judgments = [], []

    def judgment(c, e, judge, aspect, score, status=None, raw=None, at=T0, error=None):
        judgments.append(
            {
                "judgment_id": f"j:{c}:{judge}:{aspect}:{at.isoformat()}",
                "candidate_id": c,
                "example_id": e,
                "judge_id": judge,
                "aspect": aspect,
                "score": score,
                "status": status or ("ok" if score is not None else "parse_error"),
                "error": error,
                "raw_output": raw,
                "rationale": f"{judge} on {c}",
                "created_at": at,
            }
        )

    for e in INSTRUCTION + CONTEXT + ["x1"]:
        for m in MODELS:
            for setting in (SETTING, "s:eval-hot"):
                if (e, m) in UNANSWERED:
                    continue
                c = cand(e, m, setting)
                cands.append(
                    {
                        "candidate_id": c,
                        "example_id": e,
                        "model_id": m,
                        "setting_id": setting,
                        "sample_index": 0,
                        "seed": 0,
                        "text": f"Answer to {e} by {m}" + (" (hot)" if setting != SETTING else ""),
                        "finish_reason": "stop",
                        "completion_tokens": 7,
                        "engine": "test",
                    }
                )
                aspects = ["task", "instruction"] if e[0] in "ix" else ["task", "faithfulness"]
                for aspect in aspects:
                    judgment(c, e, "llm:late", aspect, 0.0)  # not frozen: ignored
                    if setting != SETTING or e == "x1":
                        for judge in JUDGES[aspect]:
                            judgment(c, e, judge, aspect, 0.0)  # outside the evaluation
    for (judge, aspect), per_example in SCORES.items():
        for e, values in per_example.items():
            for m, v in zip(MODELS, values, strict=True):
                if (e, m) in UNANSWERED:
                    continue
                judgment(cand(e, m), e, judge, aspect, v, at=T0 + timedelta(seconds=1))
    # ROUGE-L's first verdict on (i1, mtl) was 0.1; the retry (later) says 0.3.
    judgment(cand("i1", "m:mtl"), "i1", ROUGE, "task", 0.1, at=T0)
    for e in INSTRUCTION + CONTEXT:
        for m in MODELS:
            if (e, m) in UNANSWERED:
                continue
            if e in IFEVAL_PROMPTS:
                r = IFEVAL_RESULTS[(e, m)]
                if r is None:
                    judgment(
                        cand(e, m),
                        e,
                        IFEVAL,
                        "instruction",
                        None,
                        "http_error",
                        error="worker crashed",
                    )
                else:
                    checked = [v for v in r.strict if v is not None]
                    judgment(
                        cand(e, m),
                        e,
                        IFEVAL,
                        "instruction",
                        sum(checked) / len(checked),
                        raw=r.to_json(),
                    )
            elif e.startswith("i"):
                judgment(
                    cand(e, m),
                    e,
                    IFEVAL,
                    "instruction",
                    None,
                    "not_applicable",
                    error="no verifiable instructions",
                )
            if e.startswith("i"):  # no context: K-Precision casts no vote
                judgment(
                    cand(e, m),
                    e,
                    KP,
                    "faithfulness",
                    None,
                    "not_applicable",
                    error="the example has no context",
                )
    insert_arrow(con, "candidates", pa.Table.from_pylist(cands))
    insert_arrow(con, "judgments", pa.Table.from_pylist(judgments))
    add_evaluation(con, evaluation_id, **kw)
    return evaluation_id


def add_experiment(con, experiment_id: str, evaluation_id: str, name: str = "mtl-tradeoff"):
    """An experiments row whose state names ``evaluation_id`` (experiments.py's shape)."""
    recipe = {
        "name": name,
        "description": "The MTL baseline against the base model.",
        "examples": {"count": 24, "seed": 0},
        "mtl": {"train": {"num_train_epochs": 1.0, "learning_rate": 2e-4}},
        "evaluation": {"checkpoints": ["base", "mtl"], "baseline": "base"},
    }
    state = {
        "experiment_id": experiment_id,
        "models": {"base": "m:base", "mtl": "m:mtl"},
        "steps": {
            "mtl.set": {"status": "done", "outputs": {"set_id": "cs-1"}},
            "mtl.train": {"status": "done", "job_id": "job-1", "outputs": {"model_id": "m:mtl"}},
            "evaluate": {"status": "done", "outputs": {"evaluation_id": evaluation_id}},
        },
    }
    con.execute(
        "INSERT INTO experiments (experiment_id, name, recipe, state, status) "
        "VALUES (?, ?, ?, ?, 'done')",
        [experiment_id, name, json.dumps(recipe), json.dumps(state)],
    )
