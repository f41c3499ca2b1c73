"""Presets: how the common file shapes map onto examples (instruction, context, reference).

A preset turns one raw record into zero or more examples (dicts with instruction,
context, reference and optionally id), raising :class:`RowError` naming the field;
the reader adds the file and the line. Flat presets (plain text columns) can also be
mapped in SQL by the importer's vectorised path.

>>> PRESETS["qa"]({"question": "Who?", "context": "Ann did.", "answers": ["Ann"]})
[{'instruction': 'Who?', 'context': 'Ann did.', 'reference': 'Ann'}]
>>> detect_preset({"instruction", "input", "output"})
'alpaca'
>>> PRESET_KINDS["alpaca"], PRESET_KINDS["summarization"]
('instruction', 'context')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUMMARIZE_INSTRUCTION = "Summarize the following article in a few sentences."


class RowError(Exception):
    """Raised by presets inside one row; the reader adds file and location."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


def _text(row: dict, key: str, required: bool = False) -> str | None:
    if key not in row or row[key] is None:
        if required:
            raise RowError(key, "missing required field")
        return None
    value = row[key]
    if not isinstance(value, str):
        raise RowError(key, f"expected text, got {type(value).__name__}")
    return value


def _first_answer(row: dict, key: str) -> str | None:
    """QA answers come as a string, a list of strings, or SQuAD's {"text": [...]}."""
    value = row.get(key)
    if isinstance(value, dict):
        value = value.get("text")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(a, str) for a in value):
            return value[0]
    raise RowError(key, f"expected text or a list of texts, got {type(value).__name__}")


@dataclass(frozen=True)
class FlatPreset:
    """A preset whose fields are plain top-level text columns (SQL can map these too)."""

    columns: dict[str, str]  # example field -> file column
    required: tuple[str, ...]
    instruction: str | None = None  # fixed request when the file has none

    def __call__(self, row: dict) -> list[dict]:
        ex = {f: _text(row, c, required=f in self.required) for f, c in self.columns.items()}
        if self.instruction is not None:
            ex["instruction"] = self.instruction
        return [ex]


_ALPACA = {"instruction": "instruction", "context": "input", "reference": "output"}


FLAT_PRESETS = {
    "alpaca": FlatPreset(_ALPACA, ("instruction",)),
    "dolly": FlatPreset(
        {**_ALPACA, "context": "context", "reference": "response"}, ("instruction",)
    ),
    "summarization": FlatPreset(
        {"context": "article", "reference": "highlights"}, ("context",), SUMMARIZE_INSTRUCTION
    ),
}


def _preset_qa(row: dict) -> list[dict]:
    return [
        {
            "instruction": _text(row, "question", required=True),
            "context": _text(row, "context", required=True),
            "reference": _first_answer(row, "answers"),
        }
    ]


def _preset_nq(row: dict) -> list[dict]:
    ctxs = row.get("ctxs")
    if not isinstance(ctxs, list) or not ctxs:
        raise RowError("ctxs", "expected a non-empty list of passages")
    if not all(isinstance(c, dict) for c in ctxs):
        raise RowError("ctxs", "expected passages as objects with title and text")
    gold = next((c for c in ctxs if c.get("isgold")), ctxs[0])
    text = _text(gold, "text", required=True)
    title = gold.get("title")
    context = f"{title}\n{text}" if isinstance(title, str) and title else text
    return [
        {
            "instruction": _text(row, "question", required=True),
            "context": context,
            "reference": _first_answer(row, "answers"),
        }
    ]


def _preset_chat(row: dict) -> list[dict]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowError("messages", "expected a non-empty list of {role, content} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise RowError(f"messages[{i}]", "expected an object with a text 'content'")
    # The last assistant turn is the reference; the user turn before it is the request.
    reference = None
    if messages[-1].get("role") == "assistant":
        reference = messages[-1]["content"]
        messages = messages[:-1]
    users = [m["content"] for m in messages if m.get("role") == "user"]
    if not users:
        raise RowError("messages", "no user message")
    system = [m["content"] for m in messages if m.get("role") == "system"]
    return [
        {
            "instruction": users[-1],
            "context": "\n\n".join(system) if system else None,
            "reference": reference,
        }
    ]


def _preset_self_instruct(row: dict) -> list[dict]:
    instruction = _text(row, "instruction", required=True)
    instances = row.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RowError("instances", "expected a non-empty list of {input, output}")
    base_id = row.get("id")
    out = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise RowError(f"instances[{i}]", "expected an object with input and output")
        try:
            ex = {
                "instruction": instruction,
                "context": _text(inst, "input"),
                "reference": _text(inst, "output"),
            }
        except RowError as e:
            raise RowError(f"instances[{i}].{e.field}", e.problem) from None
        if base_id is not None:
            ex["id"] = f"{base_id}#{i}" if len(instances) > 1 else base_id
        out.append(ex)
    return out


def _preset_ifeval(row: dict) -> list[dict]:
    """IFEval's own rows (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``): the
    prompt is the instruction, and the verifiable instructions go to ``meta.ifeval``,
    which the IFEval judge checks with lm-eval (so each id must be one lm-eval knows and
    each kwargs object one its checker takes)."""
    from reset_core.judging.ifeval_checks import kwargs_problem

    key = row.get("key")
    if key is not None and (not isinstance(key, str | int) or isinstance(key, bool)):
        raise RowError("key", f"expected text or integer, got {type(key).__name__}")
    ids = row.get("instruction_id_list")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise RowError("instruction_id_list", "expected a non-empty list of instruction ids")
    kwargs = row.get("kwargs")
    if kwargs is None:
        kwargs = [{}] * len(ids)
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        got = f"{len(kwargs)} entries" if isinstance(kwargs, list) else type(kwargs).__name__
        raise RowError(
            "kwargs", f"expected a list of {len(ids)} objects (one per instruction id), got {got}"
        )
    for i, (iid, kw) in enumerate(zip(ids, kwargs, strict=True)):
        if problem := kwargs_problem(iid, kw):
            field = "instruction_id_list" if "lm-eval" in problem else "kwargs"
            raise RowError(f"{field}[{i}]", problem)
    ex = {
        "instruction": _text(row, "prompt", required=True),
        "context": None,
        "reference": None,
        "meta": {"ifeval": {"instruction_id_list": ids, "kwargs": kwargs}},
    }
    if key is not None:
        ex["id"] = str(key)
    return [ex]


PRESETS: dict[str, Callable[[dict], list[dict]]] = {
    **FLAT_PRESETS,
    "qa": _preset_qa,
    "nq": _preset_nq,
    "chat": _preset_chat,
    "self_instruct": _preset_self_instruct,
    "ifeval": _preset_ifeval,
}


#: The example kind each preset's data plays in RESET. The paper's indicators I_instr /
#: I_faith follow the dataset's role, not whether one row happens to carry a context:
#: Alpaca's ``input``, Dolly's context, a chat system prompt or a Self-Instruct task
#: input are part of an instruction-following request; QA over passages and
#: summarization are context-dependent. A test checks every preset declares one.
PRESET_KINDS: dict[str, str] = {
    "alpaca": "instruction",
    "dolly": "instruction",
    "self_instruct": "instruction",
    "chat": "instruction",
    "ifeval": "instruction",
    "qa": "context",
    "nq": "context",
    "summarization": "context",
}


#: Which file column each preset reads for each example field, so errors name the
#: column the user sees in their file rather than our field name.
PRESET_COLUMNS: dict[str, dict[str, str]] = {
    **{name: flat.columns for name, flat in FLAT_PRESETS.items()},
    "qa": {"instruction": "question", "context": "context", "reference": "answers"},
    "nq": {"instruction": "question", "context": "ctxs", "reference": "answers"},
    "chat": {"instruction": "messages", "context": "messages", "reference": "messages"},
    "self_instruct": {
        "instruction": "instruction",
        "context": "instances",
        "reference": "instances",
    },
    "ifeval": {"instruction": "prompt", "id": "key"},
}


#: Columns that identify a preset, checked in order, for auto-detection.
_DETECT: list[tuple[str, set[str]]] = [
    ("chat", {"messages"}),
    ("ifeval", {"prompt", "instruction_id_list"}),
    ("self_instruct", {"instruction", "instances"}),
    ("nq", {"question", "ctxs"}),
    ("qa", {"question", "context"}),
    ("summarization", {"article"}),
    ("dolly", {"instruction", "response"}),
    ("alpaca", {"instruction"}),
]


def detect_preset(columns: set[str]) -> str | None:
    """The preset whose identifying columns the first record has, or None."""
    for name, needed in _DETECT:
        if needed <= columns:
            return name
    return None


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _get_path(row: Any, path: str) -> Any:
    """Follow ``a.b[0].c`` into nested records; a missing step raises KeyError.

    A column whose own name is ``path`` wins: a CSV header "score[1]" or "a.b" is a
    name, and reading it as a path would quietly map nothing.

    >>> _get_path({"a.b": "flat", "a": {"b": "nested"}}, "a.b"), _get_path({"a": [{"b": 1}]}, "a[0].b")
    ('flat', 1)
    """
    if isinstance(row, dict) and path in row:
        return row[path]
    value = row
    for name, index in _PATH_TOKEN.findall(path):
        if name:
            if not isinstance(value, dict) or name not in value:
                raise KeyError(path)
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                raise KeyError(path)
            value = value[int(index)]
    return value


def mapping_preset(mapping: dict[str, str]) -> Callable[[dict], list[dict]]:
    def convert(row: dict) -> list[dict]:
        ex: dict[str, Any] = {}
        for target, path in mapping.items():
            try:
                value = _get_path(row, path)
            except KeyError:
                if target == "instruction":
                    raise RowError(path, "missing required field") from None
                value = None
            if target == "meta":
                if value is not None and not isinstance(value, dict):
                    raise RowError(path, f"expected an object, got {type(value).__name__}")
            elif value is not None and not isinstance(value, str):
                if target == "id" and isinstance(value, int):
                    value = str(value)
                else:
                    raise RowError(path, f"expected text, got {type(value).__name__}")
            ex[target] = value
        return [ex]

    return convert
