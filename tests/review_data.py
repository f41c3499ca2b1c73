"""A small, fully known review dataset written straight into the tables of migration 001.

Examples ``ex-0 … ex-{n-1}`` (even: ``instruction``, odd: ``context``), each with
``per_example`` candidates ``ex-i/c0 …`` under two decoding settings. Two judges
score ``task`` and the kind's aspect; candidate ``c0`` is best, then ``c1``, ….
Special cases:

* ``ex-1/c0``: the judges disagree by 0.8 on ``faithfulness``;
* ``ex-2/c1``: the LLM judge failed on ``task`` (NULL score), so it is not rankable;
* ``ex-3/c0``: its text carries HTML/script/Markdown payloads (see ``PAYLOAD``).

Selection ``sel-1`` holds RESET scores ``task + 2*aspect`` (judge means), ranks and
the top-1 pick per example.
"""

from __future__ import annotations

import pyarrow as pa

from reset_core.store import insert_arrow

SELECTION = "sel-1"
JUDGES = ("llm-judge@v1", "metric@v1")
PAYLOAD = (
    "<script>window.__xss = 1</script>"
    '<img src=x onerror="window.__xss = 2"> **bold** [link](javascript:window.__xss=3) $x^2$'
)


def seed(con, n_examples: int = 6, per_example: int = 3) -> None:
    ex, cands, judgments, scores = [], [], [], []
    for i in range(n_examples):
        kind = "instruction" if i % 2 == 0 else "context"
        ex.append(
            {
                "example_id": f"ex-{i}",
                "instruction": f"Question {i}: what does the glacier carry?"
                if kind == "context"
                else f"Task {i}: write a haiku about rivers.",
                "context": "The glacier carries rocks and sand to the valley."
                if kind == "context"
                else None,
                "reference": "Rocks and sand." if kind == "context" else "Water flows on.",
                "kind": kind,
                "source": "dolly" if i % 3 else "squad",
                "split": "seen",
                "content_hash": f"h{i}",
            }
        )
        per_cand = []
        for j in range(per_example):
            cid = f"ex-{i}/c{j}"
            text = (
                f"The glacier carries rocks to Paris in 1999 (sample {j})."
                if kind == "context"
                else f"River runs, sample {j}."
            )
            if (i, j) == (3, 0):
                text = PAYLOAD
            cands.append(
                {
                    "candidate_id": cid,
                    "example_id": f"ex-{i}",
                    "model_id": "tiny",
                    "setting_id": "ds-greedy" if j == 0 else "ds-hot",
                    "sample_index": j,
                    "seed": j,
                    "text": text,
                    "engine": "test",
                }
            )
            aspect = "instruction" if kind == "instruction" else "faithfulness"
            task = round(0.9 - 0.2 * j, 3)
            asp = round(0.8 - 0.2 * j, 3)
            for judge in JUDGES:
                t = task
                if (i, j) == (2, 1) and judge == JUDGES[0]:
                    t = None
                a = asp
                if (i, j) == (1, 0):
                    a = 0.1 if judge == JUDGES[0] else 0.9
                for name, s in (("task", t), (aspect, a)):
                    judgments.append(
                        {
                            "judgment_id": f"{cid}/{judge}/{name}",
                            "candidate_id": cid,
                            "judge_id": judge,
                            "aspect": name,
                            "score": s,
                            "status": "ok" if s is not None else "parse_error",
                            "rationale": f"{judge} thinks {name} is {s}",
                        }
                    )
            # RESET score from the judge means; NULL when an aspect has no valid verdict.
            t_scores = [x["score"] for x in judgments[-4:] if x["aspect"] == "task"]
            a_scores = [x["score"] for x in judgments[-4:] if x["aspect"] != "task"]
            t_valid = [x for x in t_scores if x is not None]
            score = (
                sum(t_valid) / len(t_valid) + 2 * sum(a_scores) / len(a_scores)
                if (i, j) != (2, 1)
                else None
            )
            per_cand.append((cid, score))
        ranked = sorted((c for c in per_cand if c[1] is not None), key=lambda c: (-c[1], c[0]))
        rank = {cid: r + 1 for r, (cid, _) in enumerate(ranked)}
        for cid, score in per_cand:
            scores.append(
                {
                    "selection_id": SELECTION,
                    "candidate_id": cid,
                    "example_id": f"ex-{i}",
                    "score": score,
                    "rank": rank.get(cid),
                    "picked": rank.get(cid) == 1,
                }
            )
    con.execute(
        "INSERT INTO decoding_settings VALUES "
        "('ds-greedy', 0.0, -1, 1.0, 128, 0, 1), ('ds-hot', 1.0, 50, 0.9, 128, 0, 1)"
    )
    con.execute(
        "INSERT INTO judges (judge_id, name, kind) VALUES "
        "('llm-judge@v1', 'LLM judge', 'llm'), ('metric@v1', 'metric', 'metric')"
    )
    insert_arrow(con, "examples", pa.Table.from_pylist(ex))
    insert_arrow(con, "candidates", pa.Table.from_pylist(cands))
    insert_arrow(
        con,
        "judgments",
        pa.Table.from_pylist(
            judgments,
            schema=pa.schema(
                [
                    ("judgment_id", pa.string()),
                    ("candidate_id", pa.string()),
                    ("judge_id", pa.string()),
                    ("aspect", pa.string()),
                    ("score", pa.float64()),
                    ("status", pa.string()),
                    ("rationale", pa.string()),
                ]
            ),
        ),
    )
    con.execute(
        "INSERT INTO selections (selection_id, preset, config) VALUES (?, 'reset', '{}')",
        [SELECTION],
    )
    insert_arrow(
        con,
        "selection_scores",
        pa.Table.from_pylist(
            scores,
            schema=pa.schema(
                [
                    ("selection_id", pa.string()),
                    ("candidate_id", pa.string()),
                    ("example_id", pa.string()),
                    ("score", pa.float64()),
                    ("rank", pa.int32()),
                    ("picked", pa.bool_()),
                ]
            ),
        ),
    )
