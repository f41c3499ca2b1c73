"""Offline metric judges: the loop runs with no API key and no model.

Each covers one aspect and says plainly what it measures and what it cannot:

- :class:`RougeLJudge` and :class:`TokenF1Judge`: task quality as overlap with the
  reference answer (``rouge-score``'s ROUGE-L and ROUGE-1 F-measure; ROUGE-1 F over
  its tokenizer is exactly SQuAD-style token F1 with clipped counts).
- :class:`KnowledgePrecisionJudge`: faithfulness as the share of the answer's content
  tokens that occur in the context (K-Precision, Adlakha et al. 2023).
- :class:`InstructionProxyJudge`: instruction following, only through checks that are
  honest without a model: response hygiene plus constraints the instruction states
  explicitly (word/sentence limits, yes/no, one word, bullets, JSON, commas).

>>> from reset_core.judging.base import JudgeItem
>>> it = JudgeItem("e", "c", "faithfulness", "Who?", "Ada wrote code.", None, "context", "Ada painted it")
>>> round(KnowledgePrecisionJudge().judge([it])[0].score, 2)
0.5
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cached_property

from reset_core.judging.base import JudgeItem, Judgment, not_applicable


def _tokens(text: str) -> list[str]:
    from rouge_score.tokenize import tokenize

    return tokenize(text or "", None)


class _MetricJudge:
    kind = "metric"
    name = ""
    aspects: tuple[str, ...] = ()
    description = ""
    version = 1

    @property
    def judge_id(self) -> str:
        return f"metric:{self.name}:v{self.version}"

    def judge(
        self, items: list[JudgeItem], progress: Callable[[int], None] | None = None
    ) -> list[Judgment]:
        out = []
        for it in items:
            out.append(self._judge_one(it))
            if progress is not None:
                progress(len(out))
        return out

    def _judge_one(self, it: JudgeItem) -> Judgment:
        if it.aspect not in self.aspects:
            return not_applicable(self.judge_id, it, f"{self.name} scores {self.aspects}")
        why = self._inapplicable(it)
        if why:
            return not_applicable(self.judge_id, it, why)
        score, rationale = self._score(it)
        return Judgment(
            it.candidate_id,
            it.example_id,
            it.aspect,
            self.judge_id,
            "ok",
            score=min(1.0, max(0.0, score)),
            raw_score=score,
            rationale=rationale,
        )

    def _inapplicable(self, it: JudgeItem) -> str | None:
        return None

    def _score(self, it: JudgeItem) -> tuple[float, str]:
        raise NotImplementedError


class _ReferenceJudge(_MetricJudge):
    aspects = ("task",)
    rouge_type = ""

    @cached_property
    def _scorer(self):
        from rouge_score import rouge_scorer

        return rouge_scorer.RougeScorer([self.rouge_type], use_stemmer=True)

    def _inapplicable(self, it: JudgeItem) -> str | None:
        return None if (it.reference or "").strip() else "the example has no reference answer"

    def _score(self, it: JudgeItem) -> tuple[float, str]:
        s = self._scorer.score(it.reference, it.text)[self.rouge_type]
        return s.fmeasure, f"P={s.precision:.3f} R={s.recall:.3f} F={s.fmeasure:.3f}"


class RougeLJudge(_ReferenceJudge):
    name = "rouge_l"
    rouge_type = "rougeL"
    description = (
        "Task quality as ROUGE-L F1 (longest common subsequence, stemmed) against the "
        "example's reference answer. Measures: how much of the reference's wording the "
        "answer reproduces in order. Cannot: credit a correct answer worded differently, "
        "judge examples without a reference (no vote), or see factual errors that share words."
    )


class TokenF1Judge(_ReferenceJudge):
    name = "token_f1"
    rouge_type = "rouge1"
    description = (
        "Task quality as token F1 (ROUGE-1 F-measure, stemmed, clipped counts) against the "
        "reference answer, the SQuAD-style metric. Measures: word overlap regardless of "
        "order. Cannot: credit paraphrases, notice word order or negation, or judge "
        "examples without a reference (no vote)."
    )


class KnowledgePrecisionJudge(_MetricJudge):
    name = "knowledge_precision"
    aspects = ("faithfulness",)
    description = (
        "Faithfulness as knowledge precision: the share of the answer's content tokens "
        "(stemmed, stop words removed) that occur in the context. Measures: how much of "
        "what the answer says is drawn from the context. Cannot: detect a wrong claim "
        "assembled from context words, negation, or a faithful paraphrase with new words; "
        "it does not score examples without a context (no vote)."
    )

    @cached_property
    def _stem(self):
        from nltk.stem import porter

        return porter.PorterStemmer().stem

    @cached_property
    def _stop(self) -> frozenset[str]:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return frozenset(ENGLISH_STOP_WORDS)

    def _content(self, text: str) -> list[str]:
        return [
            self._stem(t) if len(t) > 3 else t
            for t in _tokens(text)
            if t not in self._stop and len(t) > 1
        ]

    def _inapplicable(self, it: JudgeItem) -> str | None:
        if not (it.context or "").strip():
            return "the example has no context"
        if not self._content(it.text):
            return "the answer has no content tokens to check"
        return None

    def _score(self, it: JudgeItem) -> tuple[float, str]:
        answer = self._content(it.text)
        context = set(self._content(it.context or ""))
        unsupported = [t for t in answer if t not in context]
        kp = 1 - len(unsupported) / len(answer)
        shown = ", ".join(sorted(set(unsupported))[:12])
        return kp, f"{len(answer) - len(unsupported)}/{len(answer)} content tokens in context" + (
            f"; not in context: {shown}" if shown else ""
        )


_NUM = {
    "one": 1,
    "a single": 1,
    "single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_N = r"(\d+|one|a single|single|two|three|four|five|six|seven|eight|nine|ten)"
_MAX = r"(?:in|at most|no more than|under|fewer than|less than|within|maximum of|max)"


def _n(s: str) -> int:
    return int(s) if s.isdigit() else _NUM[s]


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()])


class InstructionProxyJudge(_MetricJudge):
    name = "instruction_proxy"
    aspects = ("instruction",)
    description = (
        "Instruction-following proxy: the share of checks passed. Always: the answer is "
        "not empty, was not cut off at the token limit, is not a repetition loop and is "
        "not an echo of the instruction. Plus every constraint the instruction states "
        "explicitly and a program can verify: word or sentence limits, 'yes or no', "
        "'one word', bullet points, JSON, comma-separated. Cannot: tell whether the "
        "answer actually addresses the request or is helpful; for most open-ended "
        "instructions only the hygiene checks apply, so it separates broken answers from "
        "answers but does not rank two sound answers (the task score does that)."
    )

    def _checks(self, it: JudgeItem) -> list[tuple[str, bool]]:
        text = it.text.strip()
        words = text.split()
        toks = _tokens(text)
        checks = [
            ("non-empty", bool(toks)),
            ("not cut off at the token limit", it.finish_reason != "length"),
        ]
        grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
        checks.append(("no repetition loop", len(grams) < 6 or len(set(grams)) / len(grams) >= 0.5))
        instr = _tokens(it.instruction)
        checks.append(
            (
                "not an echo of the instruction",
                not toks or toks[: len(instr)] != instr or len(toks) > len(instr) + 3,
            )
        )
        ins = it.instruction.lower()
        if m := re.search(_MAX + r"\s+" + _N + r"\s+words?\b", ins):
            checks.append((f"at most {_n(m.group(1))} words", len(words) <= _n(m.group(1))))
        if m := re.search(r"at least\s+" + _N + r"\s+words?\b", ins):
            checks.append((f"at least {_n(m.group(1))} words", len(words) >= _n(m.group(1))))
        if m := re.search(_MAX + r"\s+" + _N + r"\s+sentences?\b", ins):
            checks.append(
                (f"at most {_n(m.group(1))} sentences", _sentences(text) <= _n(m.group(1)))
            )
        if re.search(r"\byes or no\b", ins):
            checks.append(("starts with yes or no", bool(re.match(r"(yes|no)\b", text.lower()))))
        if re.search(r"\b(one|single|a single) word\b", ins):
            checks.append(("one word", len(words) <= 2))
        if re.search(r"\bbullet(ed)? (points?|list)\b|\bnumbered list\b", ins):
            lines = [ln for ln in text.splitlines() if re.match(r"\s*([-*•]|\d+[.)])\s+", ln)]
            checks.append(("a list of at least two items", len(lines) >= 2))
        if re.search(r"\bjson\b", ins):
            checks.append(("valid JSON", _is_json(text)))
        if re.search(r"comma[- ]separated|separated by commas", ins):
            checks.append(("comma-separated", "," in text))
        return checks

    def _score(self, it: JudgeItem) -> tuple[float, str]:
        checks = self._checks(it)
        passed = sum(ok for _, ok in checks)
        failed = [name for name, ok in checks if not ok]
        return passed / len(checks), f"{passed}/{len(checks)} checks passed" + (
            f"; failed: {', '.join(failed)}" if failed else ""
        )


def _is_json(text: str) -> bool:
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


#: The offline judges, by name. Together they score every aspect the RESET formula
#: needs for both kinds of example (task + instruction, task + faithfulness).
METRIC_JUDGES = {
    j.name: j for j in (RougeLJudge, TokenF1Judge, KnowledgePrecisionJudge, InstructionProxyJudge)
}
#: The demo's default offline panel: one judge per aspect.
DEFAULT_OFFLINE = ("rouge_l", "instruction_proxy", "knowledge_precision")
