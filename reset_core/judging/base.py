"""The Judge protocol: what every judge (LLM or metric) takes and gives back.

Batch-first: a judge gets a list of :class:`JudgeItem` (one example + one candidate +
one aspect) and returns one :class:`Judgment` per item, in the same order. A judge
never raises for a single bad item: a failure is a Judgment with ``score=None``, a
``status`` and the ``error``/``raw_output`` kept ("no vote", never a fake 0).

>>> from reset_core.judging.metric_judges import RougeLJudge
>>> item = JudgeItem("e1", "c1", "task", "Say hi", None, "hello there", "instruction", "hello")
>>> RougeLJudge().judge([item])[0].status
'ok'
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import pyarrow as pa

#: Every status a judgment can carry. Only ``ok`` has a score.
STATUSES = {
    "ok": "the judge gave a score in range",
    "http_429": "rate limited (HTTP 429) on every attempt",
    "http_5xx": "server error (HTTP 5xx) on every attempt",
    "http_error": "the request itself was refused (4xx, or a 5xx that says it is invalid)",
    "timeout": "no answer within the timeout on every attempt",
    "connection_error": "connection reset or refused on every attempt",
    "truncated": "the answer was cut off mid-JSON",
    "schema_error": "JSON without a usable score field",
    "parse_error": "no score could be read from the answer",
    "out_of_range": "a score outside the rubric's scale",
    "empty": "the answer had no content",
    "refusal": "the model refused to judge",
    "not_applicable": "this judge cannot score this item (e.g. no reference or no context)",
}


def stable_hash(*parts: object, size: int = 16) -> str:
    """A short content hash of the parts (JSON-encoded, so types and order matter)."""
    data = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.blake2b(data, digest_size=size).hexdigest()


@dataclass(frozen=True)
class JudgeItem:
    """One thing to judge: a candidate answer to an example, on one aspect."""

    example_id: str
    candidate_id: str
    aspect: str
    instruction: str
    context: str | None
    reference: str | None
    kind: str  # 'instruction' | 'context'
    text: str  # the candidate's answer
    finish_reason: str | None = None  # 'length' = cut off at max_tokens
    #: The example's metadata (``examples.meta``): e.g. IFEval's verifiable instructions.
    meta: dict | None = field(default=None, compare=False)  # a dict: kept out of the hash


@dataclass
class Judgment:
    """One judge's verdict on one item. ``score`` is in [0, 1] or None when it failed."""

    candidate_id: str
    example_id: str
    aspect: str
    judge_id: str
    status: str
    score: float | None = None
    raw_score: float | None = None
    error: str | None = None
    raw_output: str | None = None
    rationale: str | None = None
    permutation: list[int] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    attempts: int = 0
    latency_ms: float | None = None
    #: How the verdict was asked for: json_schema | json_object | prompt (None: no LLM).
    output_mode: str | None = None
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown judgment status {self.status!r}")
        if self.score is not None and not (0.0 <= self.score <= 1.0):
            raise ValueError(f"judgment score {self.score} is outside [0, 1]")
        if self.status == "ok" and self.score is None:
            raise ValueError("an ok judgment needs a score")
        if self.status != "ok" and self.score is not None:
            raise ValueError("a failed judgment has no score")


@runtime_checkable
class Judge(Protocol):
    """What every judge provides. ``aspects``: the aspects it can score at all."""

    judge_id: str
    name: str
    kind: str  # 'llm' | 'metric'
    aspects: tuple[str, ...]
    description: str  # what it measures and what it cannot, shown in the UI

    def judge(
        self, items: list[JudgeItem], progress: Callable[[int], None] | None = None
    ) -> list[Judgment]:
        """One judgment per item. ``progress(k)`` hears, while the call runs, how many
        of its items are judged so far (per item or per answered request)."""
        ...


def judgment_id(job_id: str, judge_id: str, candidate_id: str, aspect: str) -> str:
    """Key of a judgment row. It includes the job, so a retry adds a row, never overwrites."""
    return "j:" + stable_hash(job_id, judge_id, candidate_id, aspect, size=12)


JUDGMENT_SCHEMA = pa.schema(
    [
        ("judgment_id", pa.string()),
        ("candidate_id", pa.string()),
        ("example_id", pa.string()),
        ("judge_id", pa.string()),
        ("aspect", pa.string()),
        ("score", pa.float64()),
        ("raw_score", pa.float64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("raw_output", pa.string()),
        ("rationale", pa.string()),
        ("permutation", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("cost_usd", pa.float64()),
        ("cached", pa.bool_()),
        ("attempts", pa.int32()),
        ("latency_ms", pa.float64()),
        ("output_mode", pa.string()),
        ("job_id", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)


def judgments_table(
    judgments: list[Judgment], job_id: str | None = None, id_scope: str | None = None
) -> pa.Table:
    """Judgments as an Arrow table with the ``judgments`` columns (for shards and inserts).

    ``judgment_id`` is keyed on ``id_scope`` when given, else on the job (see
    :func:`judgment_id`); ``job_id`` is the job column either way.
    """
    rows = []
    scope = id_scope if id_scope is not None else (job_id or "")
    for j in judgments:
        d = asdict(j)
        d["judgment_id"] = judgment_id(scope, j.judge_id, j.candidate_id, j.aspect)
        d["permutation"] = json.dumps(j.permutation) if j.permutation is not None else None
        d["job_id"] = job_id
        d["created_at"] = int(j.created_at * 1_000_000)
        rows.append(d)
    cols = {name: [r[name] for r in rows] for name in JUDGMENT_SCHEMA.names}
    cols["created_at"] = pa.array(cols["created_at"], pa.int64()).cast(pa.timestamp("us"))
    return pa.table(
        {n: pa.array(cols[n], JUDGMENT_SCHEMA.field(n).type) for n in JUDGMENT_SCHEMA.names}
    )


def not_applicable(judge_id: str, item: JudgeItem, why: str) -> Judgment:
    """The Judgment for an item a judge cannot score at all (no vote, with the reason)."""
    return Judgment(
        item.candidate_id, item.example_id, item.aspect, judge_id, "not_applicable", error=why
    )
