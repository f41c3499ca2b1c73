"""The one contract every Generator implementation must meet, plus per-engine specifics.

Engines: transformers on the tiny Llama, vLLM through the stand-in module in
tests/vllm_standin (the real API surface, run by transformers), and the
OpenAI-compatible backend against the local HTTP server, in chat and completions mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reset_core.sampling import GENERATORS
from reset_core.sampling.base import GenerationRequest, build_messages
from reset_core.sampling.config import ModelSpec
from reset_core.sampling.openai_backend import PartialGeneration
from reset_core.sampling.settings import DecodingSetting

STANDIN = Path(__file__).parent / "vllm_standin"
ENGINES = ["transformers", "vllm", "openai-chat", "openai-completions"]


@pytest.fixture
def vllm_standin(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDIN))
    sys.modules.pop("vllm", None)
    import vllm

    vllm.GENERATE_CALLS.clear()
    yield vllm
    sys.modules.pop("vllm", None)


@pytest.fixture
def make_generator(request, tiny_model_dir, monkeypatch):
    made = []

    def make(engine: str, **spec_kw):
        if engine == "transformers":
            spec = ModelSpec(model=str(tiny_model_dir), device="cpu", **spec_kw)
        elif engine == "vllm":
            request.getfixturevalue("vllm_standin")
            spec = ModelSpec(engine="vllm", model=str(tiny_model_dir), **spec_kw)
        else:
            srv = request.getfixturevalue("openai_server")
            spec = ModelSpec(
                engine="openai",
                model="local-test",
                base_url=srv.base_url,
                api=engine.split("-")[1],
                **spec_kw,
            )
        gen = GENERATORS[spec.engine](spec)
        made.append(gen)
        return gen

    yield make
    for g in made:
        g.close()


GRID = [
    DecodingSetting(temperature=0.0, max_tokens=6, n=1),
    DecodingSetting(temperature=0.7, top_k=20, max_tokens=8, n=3, seed=1),
    DecodingSetting(temperature=1.0, top_p=0.9, max_tokens=5, n=2),
]
PROMPTS = {
    "e1": ("Write a short poem about the sea.", None),
    "e2": ("Who wrote Hamlet?", "Hamlet is a play by William Shakespeare."),
}


def _requests(grid=GRID, indices=None):
    return [
        GenerationRequest(eid, build_messages(*PROMPTS[eid]), s, tuple(indices or range(s.n)))
        for eid in PROMPTS
        for s in grid
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_contract_one_result_per_requested_candidate(engine, make_generator):
    gen = make_generator(engine)
    assert gen.engine == engine.split("-")[0]
    reqs = _requests()
    results = gen.generate(reqs)
    want = {(r.example_id, r.setting.setting_id, i) for r in reqs for i in r.sample_indices}
    got = [(r.example_id, r.setting_id, r.sample_index) for r in results]
    assert sorted(got) == sorted(want)  # every candidate once, no extra, no duplicate
    by_setting = {s.setting_id: s for s in GRID}
    for r in results:
        assert isinstance(r.text, str)
        assert 0 <= r.seed < 2**63
        assert r.latency_ms >= 0
        assert r.finish_reason in ("stop", "length")
        # (the local stand-in server answers fixed texts whatever max_tokens says)
        if r.completion_tokens is not None and gen.engine != "openai":
            assert 0 <= r.completion_tokens <= by_setting[r.setting_id].max_tokens + 1
    assert gen.generate([]) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_contract_progress_moves_during_the_call_and_ends_at_the_results(engine, make_generator):
    """``progress`` never goes back and ends at the number of results; every engine that
    can tell reports before the call is over (per decoding step or answered request)."""
    gen = make_generator(engine, batch_size=64) if engine == "transformers" else None
    gen = gen or make_generator(engine)
    heard: list[tuple[float, str | None]] = []
    results = gen.generate(_requests(), progress=lambda done, detail: heard.append((done, detail)))
    done = [d for d, _ in heard]
    assert done == sorted(done) and done[-1] == len(results)
    before_the_end = [d for d in done if d < len(results)]
    if engine != "vllm":  # vLLM's one generate call reports only its end
        assert len(set(before_the_end)) >= 3
    if engine == "transformers":
        # one generate call for all 20 candidates, so the steps inside it were heard,
        # counting finished rows and the decoded share of the others
        assert any(d and d.startswith("token ") for _, d in heard)
        assert any(0 < x < len(results) and x != int(x) for x in before_the_end)


@pytest.mark.parametrize("engine", ENGINES)
def test_contract_same_requests_same_candidates(engine, make_generator):
    gen = make_generator(engine)
    first = {(r.example_id, r.setting_id, r.sample_index): r for r in gen.generate(_requests())}
    again = {(r.example_id, r.setting_id, r.sample_index): r for r in gen.generate(_requests())}
    assert {k: (r.text, r.seed) for k, r in first.items()} == {
        k: (r.text, r.seed) for k, r in again.items()
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_contract_subset_of_sample_indices_for_resume(engine, make_generator):
    """A resumed job asks for only the missing samples; index i means the same sample."""
    gen = make_generator(engine)
    setting = GRID[1]
    full = {(r.example_id, r.sample_index): r for r in gen.generate(_requests([setting]))}
    part = gen.generate(_requests([setting], indices=(2,)))
    assert sorted((r.example_id, r.sample_index) for r in part) == [("e1", 2), ("e2", 2)]
    for r in part:
        assert (r.text, r.seed) == (full[(r.example_id, 2)].text, full[(r.example_id, 2)].seed)


# ------------------------------------------------------------------ transformers specifics


@pytest.mark.parametrize("small_batch", [1, 5])
def test_transformers_candidate_does_not_depend_on_its_batch(make_generator, small_batch):
    """Each candidate samples from its own seeded stream: batch size and neighbours don't matter.

    Batch 64 reads both prompts together and decodes all 12 candidates in one call;
    batch 1 reads each prompt alone and decodes one candidate per call; batch 5 reads
    each prompt alone and decodes its 6 candidates in two calls from copies of its cache.
    """
    big = make_generator("transformers", batch_size=64)
    small = make_generator("transformers", batch_size=small_batch)
    key = lambda r: (r.example_id, r.setting_id, r.sample_index)  # noqa: E731
    a = {
        key(r): (r.text, r.seed, r.finish_reason, r.completion_tokens, r.prompt_tokens)
        for r in big.generate(_requests())
    }
    b = {
        key(r): (r.text, r.seed, r.finish_reason, r.completion_tokens, r.prompt_tokens)
        for r in small.generate(_requests())
    }
    assert a == b


def _count_prompt_reads(model):
    """Hook the input embeddings: rows of every forward pass that reads more than one token."""
    reads: list[tuple[int, int]] = []

    def hook(module, args, output):
        ids = args[0]
        if ids.shape[1] > 1:
            reads.append(tuple(ids.shape))

    return reads, model.get_input_embeddings().register_forward_hook(hook)


@pytest.mark.parametrize("batch_size", [64, 5, 1])
def test_transformers_reads_each_prompt_once(make_generator, batch_size):
    """Every setting and sample of a prompt continues from one prefill of it.

    2 prompts x 3 settings give 12 candidates; the model reads each prompt's tokens
    once (one multi-token forward pass per group of prompts), and every other pass
    reads one new token per candidate.
    """
    gen = make_generator("transformers", batch_size=batch_size)
    reads, handle = _count_prompt_reads(gen.model)
    try:
        results = gen.generate(_requests())
    finally:
        handle.remove()
    assert len(results) == 12
    assert sum(rows for rows, _ in reads) == len(PROMPTS)
    widths = {len(gen.prompt_ids(build_messages(*p))) for p in PROMPTS.values()}
    # the prefill stops one token short: generate's first step reads the last one
    assert {cols + 1 for _, cols in reads} <= widths | {max(widths)}


def _read_whole_prompt(gen, eid: str, setting: DecodingSetting, index: int) -> list[int]:
    """One candidate the plain way: ``generate`` reads its whole prompt itself, no cache
    handed in, with the same per-row sampler and seed; returns its new token ids."""
    import torch
    from transformers import LogitsProcessorList

    from reset_core.sampling.transformers_backend import PerRowSampler

    ids = torch.tensor([gen.prompt_ids(build_messages(*PROMPTS[eid]))])
    s = setting
    sampler = PerRowSampler(
        ids.shape[1], [s.temperature], [s.top_k], [s.top_p], [s.max_tokens],
        [s.candidate_seed(eid, index)], gen.eos_id, "cpu",
    )  # fmt: skip
    with torch.inference_mode():
        out = gen.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=s.max_tokens,
            logits_processor=LogitsProcessorList([sampler]),
            pad_token_id=gen.tokenizer.pad_token_id,
            eos_token_id=sorted(gen.eos_ids),
        )
    return out[0, ids.shape[1] :].tolist()


def test_transformers_rows_from_the_shared_prefill_match_plain_generate(tiny_model_dir):
    """Candidates continued from the shared prefill are the tokens plain ``generate`` gives
    when it reads the whole prompt, and each row stops on its own: at an EOS ("stop",
    the EOS counted) or at its own limit ("length")."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reset_core.sampling.transformers_backend import TransformersGenerator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = ModelSpec(model="tiny", device="cpu")
    short = DecodingSetting(temperature=0.0, max_tokens=4)
    hot = DecodingSetting(temperature=1.0, top_k=50, max_tokens=12, n=3)
    nucleus = DecodingSetting(temperature=0.8, top_p=0.9, max_tokens=9, n=2)
    # The random model never says EOS: make the fourth token of one sampled candidate
    # an end of sequence, so that some rows stop early and others run to their limit.
    probe = _read_whole_prompt(TransformersGenerator(spec, model, tok), "e1", hot, 0)
    j = next(j for j in range(3, len(probe)) if probe[j] not in probe[:j])
    model.generation_config.eos_token_id = [model.generation_config.eos_token_id, probe[j]]
    gen = TransformersGenerator(spec, model, tok)

    results = gen.generate(_requests([short, hot, nucleus]))
    assert len(results) == 2 * 6
    settings = {s.setting_id: s for s in (short, hot, nucleus)}
    for r in results:
        setting = settings[r.setting_id]
        want = _read_whole_prompt(gen, r.example_id, setting, r.sample_index)
        stop = next((i for i, t in enumerate(want) if t in gen.eos_ids), None)
        kept = want if stop is None else want[:stop]
        assert (r.text, r.finish_reason, r.completion_tokens) == (
            tok.decode(kept, skip_special_tokens=True),
            "length" if stop is None else "stop",
            len(kept) + (stop is not None),
        )
        assert r.prompt_tokens == len(gen.prompt_ids(build_messages(*PROMPTS[r.example_id])))
    first = next(r for r in results if (r.example_id, r.sample_index) == ("e1", 0)
                 and r.setting_id == hot.setting_id)  # fmt: skip
    assert (first.finish_reason, first.completion_tokens) == ("stop", j + 1)
    assert {"stop", "length"} == {r.finish_reason for r in results}


def test_transformers_seeds_differ_per_candidate_and_are_reproducible(
    make_generator, tiny_model_dir
):
    gen = make_generator("transformers")
    hot = DecodingSetting(temperature=1.0, max_tokens=12, n=4)
    results = gen.generate(_requests([hot]))
    assert len({r.seed for r in results}) == len(results)
    # A random tiny model at T=1 over 12 tokens: different seeds give different texts.
    assert len({r.text for r in results}) == len(results)
    # A fresh model load (another process, in practice) reproduces them from the seeds.
    again = make_generator("transformers").generate(_requests([hot]))
    assert sorted((r.seed, r.text) for r in again) == sorted((r.seed, r.text) for r in results)
    # Another base seed gives other candidates.
    other = gen.generate(_requests([hot.model_copy(update={"seed": 7})]))
    assert {r.text for r in other} != {r.text for r in results}


def test_transformers_greedy_and_per_row_limits(make_generator):
    gen = make_generator("transformers")
    greedy = DecodingSetting(temperature=0.0, max_tokens=7, n=3)
    longer = DecodingSetting(temperature=0.0, max_tokens=15, n=1)
    results = gen.generate(_requests([greedy, longer]))
    texts = {r.text for r in results if r.setting_id == greedy.setting_id and r.example_id == "e1"}
    assert len(texts) == 1  # greedy: every sample index gives the argmax path
    for r in results:
        limit = greedy.max_tokens if r.setting_id == greedy.setting_id else longer.max_tokens
        assert r.completion_tokens <= limit + (r.finish_reason == "stop")
        if r.finish_reason == "length":
            assert r.completion_tokens == limit


def test_transformers_batches_across_examples_and_settings(make_generator, monkeypatch):
    gen = make_generator("transformers", batch_size=64)
    calls = []
    real = gen.model.generate
    monkeypatch.setattr(gen.model, "generate", lambda **kw: calls.append(1) or real(**kw))
    results = gen.generate(_requests())
    assert len(results) == 12 and len(calls) == 1  # 2 examples x 3 settings x n, one call


def test_transformers_top_k_one_equals_greedy(make_generator):
    gen = make_generator("transformers")
    k1 = DecodingSetting(temperature=1.5, top_k=1, max_tokens=10, n=2)
    p_tiny = DecodingSetting(temperature=1.5, top_p=1e-6, max_tokens=10, n=2)
    greedy = DecodingSetting(temperature=0.0, max_tokens=10)
    res = gen.generate(_requests([k1, p_tiny, greedy]))
    by = {}
    for r in res:
        by.setdefault(r.example_id, set()).add(r.text)
    assert all(len(texts) == 1 for texts in by.values())


# ------------------------------------------------------------------ vLLM specifics


def test_vllm_makes_one_generate_call_with_per_request_params(make_generator, vllm_standin):
    gen = make_generator("vllm")
    results = gen.generate(_requests())
    n_requests = len(PROMPTS) * len(GRID)
    calls = list(vllm_standin.GENERATE_CALLS)
    assert calls == [n_requests]
    assert len(results) == 12
    # The n samples of one request share its seed; sample_index tells them apart.
    seeds = {(r.example_id, r.setting_id): set() for r in results}
    for r in results:
        seeds[(r.example_id, r.setting_id)].add(r.seed)
    assert all(len(s) == 1 for s in seeds.values())


def test_vllm_missing_package_is_a_clear_load_error(monkeypatch):
    from reset_core.sampling.base import ModelLoadError
    from reset_core.sampling.vllm_backend import VLLMGenerator

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ModelLoadError, match="needs vLLM installed"):
        VLLMGenerator(ModelSpec(engine="vllm", model="x"))


# ------------------------------------------------------------------ OpenAI specifics


def test_openai_uses_n_and_falls_back_when_server_ignores_it(make_generator, openai_server):
    gen = make_generator("openai-chat")
    setting = DecodingSetting(temperature=0.8, max_tokens=20, n=4)
    reqs = _requests([setting])
    assert len(gen.generate(reqs)) == 8
    assert openai_server.n_requests == 2  # one request per (example, setting)
    assert {b["n"] for b in openai_server.bodies} == {4}
    assert all("top_k" not in b for b in openai_server.bodies)  # -1: not sent

    openai_server.supports_n = False
    fresh = make_generator("openai-chat")
    results = fresh.generate(reqs)
    assert sorted((r.example_id, r.sample_index) for r in results) == [
        (e, i) for e in ("e1", "e2") for i in range(4)
    ]
    # first try with n=4 per request got one choice each, then the other three one by one
    assert openai_server.n_requests == 2 + 2 + 2 * 3
    assert fresh.n_supported is False


def test_openai_sends_top_k_and_respects_concurrency(make_generator, openai_server):
    openai_server.latency_s = 0.05
    gen = make_generator("openai-completions", concurrency=2)
    setting = DecodingSetting(temperature=0.5, top_k=5, max_tokens=10)
    reqs = [
        GenerationRequest(f"e{i}", build_messages(f"question {i}", None), setting, (0,))
        for i in range(6)
    ]
    assert len(gen.generate(reqs)) == 6
    assert all(b["top_k"] == 5 and b["prompt"].startswith("question") for b in openai_server.bodies)


def test_openai_failed_requests_keep_the_finished_ones(make_generator):
    gen = make_generator("openai-chat")
    setting = DecodingSetting(temperature=0.5, max_tokens=10)
    reqs = [
        GenerationRequest("ok", build_messages("fine question", None), setting, (0,)),
        GenerationRequest("bad", build_messages("[[fault:500]] broken", None), setting, (0,)),
    ]
    with pytest.raises(PartialGeneration) as info:
        gen.generate(reqs)
    assert [r.example_id for r in info.value.results] == ["ok"]
    assert "bad" in info.value.errors[0] and "500" in info.value.errors[0]
