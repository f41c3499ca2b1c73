"""IFEval accuracy, as the IFEval authors and leaderboards report it.

The offline IFEval judge (``reset_core.judging.metric_judges.IFEvalJudge``) runs
lm-eval's checks on each answer and stores, in its verdict's ``raw_output``, one JSON
object per prompt::

    {"instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
     "strict": [true, false], "loose": [true, true], "unscored": {}}

``strict``/``loose`` hold one entry per instruction: followed, not followed, or
``null`` when the instruction could not be checked (its reason is in ``unscored``,
e.g. NLTK's sentence data missing). A prompt with any unchecked instruction is
*unscored* at prompt level (never failed, never silently dropped: it is counted with
its reason); its checked instructions still count at instruction level.

- prompt-level accuracy: the share of prompts whose every instruction is followed;
- instruction-level accuracy: the share of all instructions followed;
- strict checks the answer as given; loose also accepts it with its first and/or last
  line removed or with ``*`` markup stripped (IFEval's own definition).

>>> r = parse_result('{"instruction_id_list": ["a", "b"], "strict": [true, false], '
...                  '"loose": [true, true], "unscored": {}}')
>>> r.prompt_strict, r.prompt_loose
(False, True)
>>> acc = accuracy([r, parse_result('{"instruction_id_list": ["c"], "strict": [null], '
...                                 '"loose": [null], "unscored": {"c": "needs NLTK punkt"}}')])
>>> acc["prompt_strict"], acc["prompt_loose"], acc["inst_strict"], acc["inst_loose"]
(0.0, 1.0, 0.5, 1.0)
>>> acc["n_prompts"], acc["n_unscored"], acc["unscored_reasons"]
(1, 1, {'needs NLTK punkt': 1})
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

#: The four figures, in the order tables show them.
MEASURES = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")
MEASURE_TEXT = {
    "prompt_strict": "prompt-level strict",
    "prompt_loose": "prompt-level loose",
    "inst_strict": "instruction-level strict",
    "inst_loose": "instruction-level loose",
}


@dataclass(frozen=True)
class IFEvalResult:
    """One answer's IFEval checks: per instruction, followed (strict, loose) or None."""

    instruction_ids: tuple[str, ...]
    strict: tuple[bool | None, ...]
    loose: tuple[bool | None, ...]
    unscored: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every instruction was checked, so the prompt-level verdict is known."""
        return all(v is not None for v in self.strict) and bool(self.strict)

    @property
    def prompt_strict(self) -> bool | None:
        return all(self.strict) if self.complete else None

    @property
    def prompt_loose(self) -> bool | None:
        return all(self.loose) if self.complete else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "instruction_id_list": list(self.instruction_ids),
                "strict": list(self.strict),
                "loose": list(self.loose),
                "unscored": self.unscored,
            }
        )


def parse_result(raw_output: str | None) -> IFEvalResult | None:
    """An IFEval verdict's ``raw_output`` as a result; None when it holds none."""
    if not raw_output:
        return None
    try:
        d = json.loads(raw_output)
    except ValueError:
        return None
    if not isinstance(d, dict) or "strict" not in d:
        return None
    return IFEvalResult(
        instruction_ids=tuple(d.get("instruction_id_list") or ()),
        strict=tuple(d["strict"]),
        loose=tuple(d.get("loose") or d["strict"]),
        unscored=dict(d.get("unscored") or {}),
    )


def accuracy(results: Iterable[IFEvalResult]) -> dict:
    """Prompt- and instruction-level accuracy, strict and loose, over ``results``.

    Unscored prompts are counted (``n_unscored``, by reason) and left out of the
    prompt-level figures; their checked instructions still count at instruction level.
    A figure with nothing to count is None.
    """
    results = list(results)
    complete = [r for r in results if r.complete]
    strict = [v for r in results for v in r.strict if v is not None]
    loose = [v for r in results for v in r.loose if v is not None]
    reasons = Counter(reason for r in results if not r.complete for reason in r.unscored.values())

    def share(values: list[bool]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "prompt_strict": share([r.prompt_strict for r in complete]),
        "prompt_loose": share([r.prompt_loose for r in complete]),
        "inst_strict": share(strict),
        "inst_loose": share(loose),
        "n_prompts": len(complete),
        "n_instructions": len(strict),
        "n_unscored": len(results) - len(complete),
        "unscored_reasons": dict(reasons),
    }
