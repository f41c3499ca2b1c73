"""Sampling with Hugging Face transformers, on CPU or CUDA, batched across examples AND settings.

A plain ``model.generate`` applies one temperature / top-k / top-p to the whole batch,
which would force one call per setting (and a naive loop, one per candidate), and it
reads the prompt again in every call and for every returned sequence. Instead:

* each prompt is read once (the prefill): the candidates of a ``generate`` call are
  grouped by prompt, the prompts of a group (whole prompts, up to ``batch_size``
  candidates; left padding, sorted by length to keep it low) run through the model in
  one forward pass, and their KV cache is then expanded to one row per candidate
  (``Cache.batch_select_indices``) for every setting and sample of that prompt. A
  context example (a 1-2k token passage) costs one prefill, not one per candidate;
* every candidate is its own decoding row, and :class:`PerRowSampler`, a transformers
  ``LogitsProcessor``, samples each row's next token under that row's own setting from
  that row's own seeded ``torch.Generator`` and hands ``generate`` (continuing from
  the expanded cache) a one-hot choice, which greedy decoding then takes;
* a candidate's tokens depend only on its prompt, setting and seed, not on which
  other rows shared its batch: every row's random stream is its own, drawn once
  per step (rows still differ by float rounding of padded attention, which is tiny);
* each row stops at its own ``max_tokens`` (the sampler forces EOS there) inside a
  batch that runs to the longest one;
* while a batch runs, the caller's ``progress`` hook hears how far it is, so a job's
  progress moves long before the batch's shard is written: :class:`PrefillProgress`
  (forward hooks on the decoder layers) reports the prefill layer by layer, the one
  long step (every prompt token of the group at once: seconds for a group of long
  prompts on a busy CPU), and :class:`DecodeProgress` (a ``StoppingCriteria`` that
  never stops) every decoding step after it.

Seeds: every candidate gets ``setting.candidate_seed(example_id, sample_index)``,
recorded with it; rerunning one candidate alone gives the same text.

Here on the tiny random test model (a real one loads by path: ``ModelSpec(model=...)``):

>>> from reset_core.models import build_tiny_llama
>>> from reset_core.sampling.base import build_messages
>>> from reset_core.sampling.settings import DecodingSetting
>>> model, tok = build_tiny_llama()
>>> gen = TransformersGenerator(ModelSpec(model="tiny-llama", device="cpu"), model, tok)
>>> hot = DecodingSetting(temperature=0.8, max_tokens=8, n=3)
>>> first = gen.generate([GenerationRequest("e1", build_messages("Hi", None), hot, (0, 1, 2))])
>>> [r.sample_index for r in first], len({r.seed for r in first})
([0, 1, 2], 3)
>>> [alone] = gen.generate([GenerationRequest("e1", build_messages("Hi", None), hot, (1,))])
>>> (alone.seed, alone.text) == (first[1].seed, first[1].text)
True
"""

from __future__ import annotations

import copy
import inspect
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from reset_core.sampling.base import (
    GenerationRequest,
    GenerationResult,
    ModelLoadError,
    Progress,
    Status,
)
from reset_core.sampling.config import ModelSpec


class _Row(NamedTuple):
    """One candidate to make: its request, sample index, seed and prompt length."""

    req: GenerationRequest
    index: int
    seed: int
    prompt_tokens: int


def _pack(prompts: list, batch_size: int) -> list[list]:
    """Consecutive prompts, whole, into groups of at most ``batch_size`` candidates.

    A prompt is never split across groups (that would read it twice); one with more
    candidates than ``batch_size`` is a group of its own.

    >>> [[k for k, _ in g] for g in _pack([("a", [1] * 3), ("b", [1] * 2), ("c", [1] * 9)], 5)]
    [['a', 'b'], ['c']]
    """
    groups: list[list] = []
    current: list = []
    n = 0
    for key, rows in prompts:
        if current and n + len(rows) > batch_size:
            groups.append(current)
            current, n = [], 0
        current.append((key, rows))
        n += len(rows)
    if current:
        groups.append(current)
    return groups


class PerRowSampler:
    """A transformers ``LogitsProcessor`` that samples every row under its own setting and seed.

    Returns scores that are ``-inf`` everywhere except the chosen token, so ``generate``
    must run greedy (``do_sample=False``). Temperature 0 means argmax.
    """

    def __init__(
        self,
        prompt_len: int,
        temperatures: Sequence[float],
        top_ks: Sequence[int],
        top_ps: Sequence[float],
        max_tokens: Sequence[int],
        seeds: Sequence[int],
        eos_token_id: int,
        device: Any,
    ):
        import torch

        self.prompt_len = prompt_len
        self.temperature = torch.tensor(temperatures, dtype=torch.float32, device=device)
        self.top_k = torch.tensor(top_ks, dtype=torch.long, device=device)
        self.top_p = torch.tensor(top_ps, dtype=torch.float32, device=device)
        self.max_tokens = torch.tensor(max_tokens, dtype=torch.long, device=device)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.eos = eos_token_id
        self.device = device
        self.any_top_k = bool((self.top_k > 0).any())
        self.any_top_p = bool((self.top_p < 1).any())

    def __call__(self, input_ids, scores):
        import torch

        step = input_ids.shape[1] - self.prompt_len
        logits = scores.float()
        vocab = logits.shape[-1]
        greedy = self.temperature == 0
        logits = logits / torch.where(greedy, 1.0, self.temperature).unsqueeze(1)
        neg_inf = torch.tensor(float("-inf"), device=logits.device)
        if self.any_top_p:
            # Full sort once serves both top-k and top-p.
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            ranks = torch.arange(vocab, device=logits.device).unsqueeze(0)
            k = torch.where(self.top_k > 0, self.top_k, vocab).unsqueeze(1)
            sorted_logits = torch.where(ranks < k, sorted_logits, neg_inf)
            probs = sorted_logits.softmax(dim=-1)
            mass_before = probs.cumsum(dim=-1) - probs
            sorted_logits = torch.where(
                mass_before > self.top_p.unsqueeze(1), neg_inf, sorted_logits
            )
            logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
        elif self.any_top_k:
            kmax = int(min(self.top_k.max().item(), vocab))
            top_vals = logits.topk(kmax, dim=-1).values
            k = torch.where(self.top_k > 0, self.top_k.clamp(max=kmax), kmax)
            threshold = top_vals.gather(1, (k - 1).unsqueeze(1))
            unrestricted = (self.top_k <= 0).unsqueeze(1)
            logits = torch.where(unrestricted | (logits >= threshold), logits, neg_inf)
        probs = logits.softmax(dim=-1)
        # One uniform draw per row per step from the row's own generator: the stream a
        # candidate sees does not depend on its batch neighbours.
        u = torch.cat([torch.rand(1, generator=g) for g in self.generators]).to(logits.device)
        cdf = probs.cumsum(dim=-1)
        target = (u * cdf[:, -1]).unsqueeze(1)
        sampled = torch.searchsorted(cdf, target, right=True).squeeze(1).clamp(max=vocab - 1)
        choice = torch.where(greedy, scores.argmax(dim=-1), sampled)
        # A row that has its max_tokens stops here, even if the batch goes on.
        choice = torch.where(step >= self.max_tokens, self.eos, choice)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(1, choice.unsqueeze(1), 0.0)


class DecodeProgress:
    """A transformers ``StoppingCriteria`` that never stops a row: it reports decoding.

    After a decoding step it hands ``report(done, "token i/n")`` the batch's finished
    work in candidates: a row counts 1 once it has emitted EOS or reached its own
    ``max_tokens``, else the share of its ``max_tokens`` decoded so far. It updates the
    per-row "finished" mask on the device every step; on a GPU it reads the sum back
    (a sync) at most every 0.2 s, on a CPU (no sync to save) every step. The caller
    throttles what it writes.
    """

    def __init__(
        self,
        prompt_len: int,
        max_tokens: Sequence[int],
        eos_ids: Sequence[int],
        report: Progress,
        device: Any,
    ):
        import torch

        every_s = 0.0 if torch.device(device).type == "cpu" else 0.2
        self.prompt_len = prompt_len
        self.steps = max(max_tokens)
        self.max_tokens = torch.tensor(max_tokens, dtype=torch.float32, device=device)
        self.eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
        self.finished = torch.zeros(len(max_tokens), dtype=torch.bool, device=device)
        self.report, self.every_s = report, every_s
        self.last = 0.0

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        step = input_ids.shape[1] - self.prompt_len
        self.finished |= torch.isin(input_ids[:, -1], self.eos)
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            share = (step / self.max_tokens).clamp(max=1.0)
            done = torch.where(self.finished, 1.0, share).sum()
            self.report(float(done), f"token {step}/{self.steps}")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class PrefillProgress:
    """Forward hooks on a decoder's layers that report the prefill, layer by layer.

    The prefill runs every prompt token of the batch through the model in one forward
    pass, the longest step of a batch; decoding steps after it pass one token per row,
    which the hooks let through without a word. Remove them with :meth:`close`. A
    model whose layers are not found (not a ``model.layers`` stack) gets no hooks.
    """

    def __init__(self, model: Any, report: Callable[[str], None]):
        decoder = getattr(model, "model", None)
        layers = list(getattr(decoder, "layers", None) or [])
        self.report = report
        self.handles = [
            layer.register_forward_hook(self._hook(i + 1, len(layers)), with_kwargs=True)
            for i, layer in enumerate(layers)
        ]

    def _hook(self, i: int, n: int):
        def hook(module, args, kwargs, output):
            hidden = args[0] if args else kwargs.get("hidden_states")
            if hidden is not None and hidden.dim() == 3 and hidden.shape[1] > 1:
                self.report(f"layer {i}/{n}")

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class TransformersGenerator:
    """The transformers backend: chat template, left padding, one generate call per batch."""

    engine = "transformers"

    def __init__(
        self,
        spec: ModelSpec,
        model: Any = None,
        tokenizer: Any = None,
        status: Status | None = None,
    ):
        status = status or (lambda text: None)
        status("importing torch")
        import torch

        status("importing transformers")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        device = spec.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device=cuda was asked for but torch sees no CUDA device")
        self.device = torch.device(device)
        dtype = {
            "auto": torch.bfloat16 if device == "cuda" else torch.float32,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[spec.dtype]
        try:
            if tokenizer is None:
                status("reading the tokenizer")
                tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision)
            status("reading the weights")
            if model is None:
                model = AutoModelForCausalLM.from_pretrained(
                    spec.model, revision=spec.revision, dtype=dtype
                )
            if spec.adapter:
                from peft import PeftModel

                # Merged once at load: generation then runs at the base model's speed.
                model = PeftModel.from_pretrained(model, spec.adapter).merge_and_unload()
            model.to(self.device)
        except Exception as e:  # noqa: BLE001 - any load failure becomes one clear error
            raise ModelLoadError(
                f"could not load model {spec.model!r} with transformers: {type(e).__name__}: {e}"
            ) from e
        model.eval()
        tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.eos_id = eos[0] if isinstance(eos, list) else eos
        self._prompt_cache: dict[str, list[int]] = {}
        # transformers 5.x renamed the cache argument (and output field) from
        # ``past_key_values`` to ``cache``; use whichever this version's model takes.
        forward = inspect.signature(type(model).forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in forward

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the chat prompt (template + generation prompt), cached per prompt."""
        key = json.dumps(messages, sort_keys=True)
        ids = self._prompt_cache.get(key)
        if ids is None:
            tok = self.tokenizer
            if tok.chat_template:
                text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                ids = tok(text, add_special_tokens=False)["input_ids"]
            else:  # a base model without a chat template: plain text
                ids = tok("\n\n".join(m["content"] for m in messages))["input_ids"]
            self._prompt_cache[key] = ids
        return ids

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress | None = None
    ) -> list[GenerationResult]:
        # Every candidate of one prompt (all its settings and samples) shares that
        # prompt's prefill, so candidates are grouped by their prompt's token ids.
        by_prompt: dict[tuple[int, ...], list[_Row]] = {}
        for req in requests:
            ids = tuple(self.prompt_ids(req.messages))
            for i in req.sample_indices:
                row = _Row(req, i, req.setting.candidate_seed(req.example_id, i), len(ids))
                by_prompt.setdefault(ids, []).append(row)
        groups = _pack(sorted(by_prompt.items(), key=lambda kv: len(kv[0])), self.spec.batch_size)
        out: list[GenerationResult] = []
        for group in groups:
            report = None
            if progress is not None:
                n_before = len(out)

                def report(done: float, detail: str | None, n_before: int = n_before) -> None:
                    progress(n_before + done, detail)

            out += self._generate_group(group, report)
            if progress is not None:
                progress(len(out), None)
        return out

    def _prefill(self, input_ids, mask, progress: Progress | None):
        """One forward pass over the prompts of a group; returns their KV cache.

        Positions follow ``generate``'s own rule for left padding (the running count
        of real tokens), so the cache is the one ``generate`` would have built.
        """
        import torch

        n = input_ids.shape[0]
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        kwargs = {self._cache_kwarg: None, "use_cache": True}
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1  # the prefill's logits are never read
        hooks = None
        if progress is not None:
            reading = f"reading {n} prompt{'s' * (n != 1)}"
            progress(0.0, reading)
            hooks = PrefillProgress(self.model, lambda layer: progress(0.0, f"{reading}: {layer}"))
        try:
            with torch.inference_mode():
                out = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    **kwargs,
                )
        except torch.OutOfMemoryError as e:
            raise RuntimeError(
                f"out of memory reading {n} prompts at once; lower batch_size "
                f"(now {self.spec.batch_size}): {e}"
            ) from e
        finally:
            if hooks is not None:
                hooks.close()
        return getattr(out, self._cache_kwarg)

    def _generate_group(
        self, group: list[tuple[tuple[int, ...], list[_Row]]], progress: Progress | None = None
    ) -> list[GenerationResult]:
        """Prefill a group's prompts once, then decode all their candidates from that cache.

        The prefill covers every prompt column but the last; ``generate`` then gets the
        full prompt rows with the cache expanded to one row per candidate, so its first
        step reads one token per row and samples the first new token from there on. A
        group whose candidates exceed ``batch_size`` (one prompt with more settings x samples)
        decodes in several chunks from copies of the same cache.
        """
        import torch

        width = max(len(ids) for ids, _ in group)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids, _ in group])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in group])
        t0 = time.perf_counter()
        # A one-token prompt leaves nothing to prefill: generate reads it itself.
        cache = self._prefill(input_ids[:, :-1], mask[:, :-1], progress) if width > 1 else None
        prefill_s = time.perf_counter() - t0
        # Rows with similar limits decode together: chunks that end together.
        rows = sorted(
            ((p, row) for p, (_, rows) in enumerate(group) for row in rows),
            key=lambda pr: (pr[1].req.setting.max_tokens, pr[0]),
        )
        bs = self.spec.batch_size
        chunks = [rows[i : i + bs] for i in range(0, len(rows), bs)]
        results: list[GenerationResult] = []
        for c, chunk in enumerate(chunks):
            index = torch.tensor([p for p, _ in chunk])
            chunk_cache = None
            if cache is not None:
                # The last chunk takes the prefill cache itself; earlier ones a copy.
                chunk_cache = cache if c == len(chunks) - 1 else copy.deepcopy(cache)
                chunk_cache.batch_select_indices(index.to(self.device))
            report = None
            if progress is not None:
                n_before = len(results)

                def report(done: float, detail: str | None, n_before: int = n_before) -> None:
                    progress(n_before + done, detail)

            results += self._decode(
                [row for _, row in chunk],
                input_ids[index],
                mask[index],
                chunk_cache,
                prefill_s,
                report,
            )
        return results

    def _decode(
        self,
        rows: list[_Row],
        input_ids,
        mask,
        cache,
        prefill_s: float,
        progress: Progress | None = None,
    ) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        width = input_ids.shape[1]
        settings = [r.req.setting for r in rows]
        sampler = PerRowSampler(
            prompt_len=width,
            temperatures=[s.temperature for s in settings],
            top_ks=[s.top_k for s in settings],
            top_ps=[s.top_p for s in settings],
            max_tokens=[s.max_tokens for s in settings],
            seeds=[r.seed for r in rows],
            eos_token_id=self.eos_id,
            device=self.device,
        )
        config = GenerationConfig(
            max_new_tokens=max(s.max_tokens for s in settings),
            do_sample=False,  # the sampler has already chosen; greedy takes its choice
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids),
        )
        stopping = StoppingCriteriaList()
        if progress is not None:
            stopping.append(
                DecodeProgress(
                    width,
                    [s.max_tokens for s in settings],
                    sorted(self.eos_ids),
                    progress,
                    self.device,
                )
            )
        kwargs = {} if cache is None else {self._cache_kwarg: cache}
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                seqs = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    generation_config=config,
                    logits_processor=LogitsProcessorList([sampler]),
                    stopping_criteria=stopping,
                    **kwargs,
                )
        except torch.OutOfMemoryError as e:
            raise RuntimeError(
                f"out of memory generating {len(rows)} candidates at once; lower batch_size "
                f"(now {self.spec.batch_size}): {e}"
            ) from e
        # A candidate waited for its prompts' prefill and its chunk's decoding.
        latency_ms = (prefill_s + time.perf_counter() - t0) * 1000
        new_tokens = seqs[:, width:].tolist()
        results = []
        for row, toks, setting in zip(rows, new_tokens, settings, strict=True):
            toks = toks[: setting.max_tokens]
            stop = next((j for j, t in enumerate(toks) if t in self.eos_ids), None)
            kept = toks if stop is None else toks[:stop]
            results.append(
                GenerationResult(
                    example_id=row.req.example_id,
                    setting_id=setting.setting_id,
                    sample_index=row.index,
                    seed=row.seed,
                    text=self.tokenizer.decode(kept, skip_special_tokens=True),
                    finish_reason="length" if stop is None else "stop",
                    prompt_tokens=row.prompt_tokens,
                    completion_tokens=len(kept) + (stop is not None),
                    latency_ms=latency_ms,
                )
            )
        return results

    def close(self) -> None:
        self.model = None
        self._prompt_cache.clear()
