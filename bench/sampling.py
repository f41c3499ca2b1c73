"""Sampling throughput: our transformers backend vs what a user would write, same run, same inputs.

Ours: ``TransformersGenerator`` reads each prompt once (one prefill per group of
prompts) and decodes every setting and sample of it from that KV cache, in
``generate`` calls of up to ``--batch-size`` candidates from any mix of examples
and settings, each row under its own temperature, top-k and seed.
Ours + progress: the same, with the progress hooks a sampling job runs (prefill layer
hooks, a per-step ``StoppingCriteria``, ``progress.json`` written through a
``JobContext``), to show they cost nothing measurable.
Per setting: the baseline a user would write with plain transformers: for each
setting of the grid, one batched ``model.generate`` over the prompts (left padded,
``--batch-size`` rows a call) with ``num_return_sequences=n`` and that setting's
``do_sample`` / temperature / top_k / top_p (top-k -1 = unrestricted is passed as
``top_k=0``, which switches transformers' top-k filter off; left out it would be 50).
Naive: one ``model.generate`` per candidate with that candidate's settings and seed.

Two workloads, same loaded model for every path:

* instruction: the first ``--examples`` seen instructions of the demo set (short
  prompts, 30-100 tokens), the default grid (temperatures 0.1, 0.5, 1.0 x top-k 20 /
  unrestricted, ``--samples`` each), ``--max-tokens``; on the tiny random Llama and on
  SmolLM2-135M; ours, ours + progress, per setting and naive;
* context (SmolLM2 only): ``--context-examples`` prompts of 1-2k tokens from the demo
  set: its seen Dolly context examples of that length (closed QA, extraction and
  summaries over a long passage; two today), then Natural Questions asked as
  retrieval-augmented QA: the question's gold passage among other demo NQ passages,
  as many as bring the prompt to ``--context-tokens`` (the demo's NQ passages are one
  ~80-word gold passage each; retrieval systems hand a model 10-30 of them, as in
  Liu et al. 2023, "Lost in the Middle"). Grid: temperatures 0.7, 1.0 x top-k 20 /
  unrestricted x ``--context-samples`` each, ``--context-max-tokens``; ours vs per
  setting (naive per candidate would read each prompt as often as per setting does,
  and take minutes more).

With one torch thread, the defaults took 2 CPU-minutes for the instruction workload
and 11 for the context one (3.5 and 38 minutes of wall time on 2 cores shared with
about ten other busy processes); ``--context-examples 2`` halves the second, and
``--workloads instruction`` or ``context`` runs one.

    .venv/bin/python bench/sampling.py [--examples 4] [--max-tokens 32] [--samples 1]
        [--context-examples 4] [--context-tokens 1500] [--context-max-tokens 64]
        [--context-samples 2] [--batch-size 32] [--models tiny,smollm2]
        [--workloads instruction,context] [--threads 1]

What it does not show: a GPU (where the prefill is cheap next to decoding, so the
gain from reading prompts once is smaller, and where vLLM's prefix caching is the
better tool); bigger models; the memory of the KV cache, which is the same as before
(each candidate still holds its own copy of its prompt's cache while decoding); a
grid with one setting and n=1, where there is nothing to share; and prompts that a
sampling job's shards split (the worker cuts its requests into shards of
``batch_size`` candidates, and a prompt whose candidates fall into two shards is read
twice).

Prints a table, then one line of JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reset_core.jobs import JobContext  # noqa: E402
from reset_core.paths import DEMO_FILE  # noqa: E402
from reset_core.sampling.base import GenerationRequest, build_messages  # noqa: E402
from reset_core.sampling.config import ModelSpec  # noqa: E402
from reset_core.sampling.settings import DecodingSetting, default_grid  # noqa: E402
from reset_core.sampling.transformers_backend import TransformersGenerator  # noqa: E402


def _demo_rows() -> list[dict]:
    return [json.loads(line) for line in DEMO_FILE.read_text().splitlines() if line.strip()]


def demo_examples(k: int) -> list[tuple[str, str, str | None]]:
    rows = [r for r in _demo_rows() if r.get("split") == "seen"]
    return [(r["id"], r["instruction"], r.get("context")) for r in rows[:k]]


def context_examples(
    gen: TransformersGenerator, k: int, target_tokens: int
) -> list[tuple[str, str, str | None]]:
    """``k`` context prompts of 1-2k tokens from the demo set (see the module docstring)."""
    rows = [r for r in _demo_rows() if r.get("split") == "seen" and r.get("context")]

    def n_tokens(instruction: str, context: str) -> int:
        return len(gen.prompt_ids(build_messages(instruction, context)))

    long_ones = [
        (r["id"], r["instruction"], r["context"])
        for r in rows
        if r["source"] != "natural_questions"
        and 1000 <= n_tokens(r["instruction"], r["context"]) <= 2000
    ]
    out = long_ones[:k]
    nq = [r for r in rows if r["source"] == "natural_questions"]
    for i, r in enumerate(nq):
        if len(out) >= k:
            break
        # Other questions' gold passages, in file order, with the gold one in the middle.
        others = [o["context"] for o in nq[i + 1 :] + nq[:i]]
        passages: list[str] = []
        while n_tokens(r["instruction"], "\n\n".join(passages)) < target_tokens and others:
            passages.append(others.pop(0))
        passages.insert(len(passages) // 2, r["context"])
        out.append((f"{r['id']}-rag", r["instruction"], "\n\n".join(passages)))
    return out


def _count_new_tokens(new: list[list[int]], eos: set[int], limit: int) -> int:
    """Completion tokens as our backend counts them: up to and with the first EOS."""
    return sum(next((j + 1 for j, t in enumerate(row) if t in eos), limit) for row in new)


def _plain_kwargs(s: DecodingSetting) -> dict:
    """A setting as ``generate`` keywords; top-k -1 is ``top_k=0`` (transformers' off)."""
    if s.temperature == 0:
        return {"do_sample": False}
    return {
        "do_sample": True,
        "temperature": s.temperature,
        "top_k": s.top_k if s.top_k > 0 else 0,
        "top_p": s.top_p,
    }


def naive(gen: TransformersGenerator, requests: list[GenerationRequest]) -> tuple[int, int]:
    """One generate call per candidate; returns (candidates, completion tokens)."""
    import torch

    model, tok = gen.model, gen.tokenizer
    n, tokens = 0, 0
    for req in requests:
        s = req.setting
        ids = torch.tensor([gen.prompt_ids(req.messages)])
        for i in req.sample_indices:
            torch.manual_seed(s.candidate_seed(req.example_id, i) % 2**63)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=s.max_tokens,
                    pad_token_id=tok.pad_token_id,
                    **_plain_kwargs(s),
                )
            tokens += _count_new_tokens(out[:, ids.shape[1] :].tolist(), gen.eos_ids, s.max_tokens)
            n += 1
    return n, tokens


def per_setting(
    gen: TransformersGenerator, requests: list[GenerationRequest], batch_size: int
) -> tuple[int, int]:
    """One batched generate per setting (``num_return_sequences=n``), as a user would write."""
    import torch

    model, tok = gen.model, gen.tokenizer
    by_setting: dict[str, list[GenerationRequest]] = {}
    for req in requests:
        by_setting.setdefault(req.setting.setting_id, []).append(req)
    n, tokens = 0, 0
    for reqs in by_setting.values():
        s = reqs[0].setting
        per_call = max(1, batch_size // s.n)  # rows a call: prompts x num_return_sequences
        for start in range(0, len(reqs), per_call):
            prompts = [gen.prompt_ids(r.messages) for r in reqs[start : start + per_call]]
            width = max(map(len, prompts))
            pad = tok.pad_token_id
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            torch.manual_seed(s.seed)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=s.max_tokens,
                    num_return_sequences=s.n,
                    pad_token_id=pad,
                    **_plain_kwargs(s),
                )
            new = out[:, width:].tolist()
            tokens += _count_new_tokens(new, gen.eos_ids, s.max_tokens)
            n += len(new)
    return n, tokens


def _requests(examples, grid) -> list[GenerationRequest]:
    return [
        GenerationRequest(eid, build_messages(instr, ctx), s, tuple(range(s.n)))
        for eid, instr, ctx in examples
        for s in grid
    ]


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _warm(gen: TransformersGenerator, requests: list[GenerationRequest], batch_size: int) -> None:
    """First-call allocations and lazy kernels, outside the timings, for every path."""
    setting = requests[0].setting.model_copy(update={"max_tokens": 2, "n": 1})
    warm = [GenerationRequest("warm", requests[0].messages, setting, (0,))]
    gen.generate(warm)
    naive(gen, warm)
    per_setting(gen, warm, batch_size)


def instruction_workload(label: str, gen: TransformersGenerator, args) -> dict:
    grid = default_grid(max_tokens=args.max_tokens, n=args.samples)
    requests = _requests(demo_examples(args.examples), grid)
    _warm(gen, requests, args.batch_size)

    results, ours_s = _timed(gen.generate, requests)
    ours_tokens = sum(r.completion_tokens or 0 for r in results)
    with tempfile.TemporaryDirectory() as job_dir:
        ctx = JobContext(Path(job_dir), {})
        ctx.start(len(results))
        with_progress, progress_s = _timed(lambda: gen.generate(requests, progress=ctx.partial))
    assert [r.text for r in with_progress] == [r.text for r in results]
    (n_setting, setting_tokens), setting_s = _timed(per_setting, gen, requests, args.batch_size)
    (n_naive, naive_tokens), naive_s = _timed(naive, gen, requests)
    assert len(results) == n_setting == n_naive
    ours = len(results) / ours_s
    return {
        "workload": "instruction",
        "model": label,
        "candidates": len(results),
        "prompt_tokens_mean": sum(r.prompt_tokens for r in results) / len(results),
        "ours_candidates_per_s": ours,
        "ours_progress_candidates_per_s": len(results) / progress_s,
        "per_setting_candidates_per_s": n_setting / setting_s,
        "naive_candidates_per_s": n_naive / naive_s,
        "ratio": ours / (n_naive / naive_s),
        "ours_over_per_setting_ratio": ours / (n_setting / setting_s),
        "progress_over_ours_ratio": ours_s / progress_s,
        "ours_tokens_per_s": ours_tokens / ours_s,
        "per_setting_tokens_per_s": setting_tokens / setting_s,
        "naive_tokens_per_s": naive_tokens / naive_s,
    }


def context_workload(label: str, gen: TransformersGenerator, args) -> dict:
    grid = default_grid(
        temperatures=(0.7, 1.0),
        top_ks=(20, -1),
        max_tokens=args.context_max_tokens,
        n=args.context_samples,
    )
    requests = _requests(context_examples(gen, args.context_examples, args.context_tokens), grid)
    _warm(gen, requests, args.batch_size)
    results, ours_s = _timed(gen.generate, requests)
    ours_tokens = sum(r.completion_tokens or 0 for r in results)
    (n_setting, setting_tokens), setting_s = _timed(per_setting, gen, requests, args.batch_size)
    assert len(results) == n_setting
    ours = len(results) / ours_s
    return {
        "workload": "context",
        "model": label,
        "candidates": len(results),
        "prompt_tokens_mean": sum(r.prompt_tokens for r in results) / len(results),
        "ours_candidates_per_s": ours,
        "per_setting_candidates_per_s": n_setting / setting_s,
        "ours_over_per_setting_ratio": ours / (n_setting / setting_s),
        "ours_tokens_per_s": ours_tokens / ours_s,
        "per_setting_tokens_per_s": setting_tokens / setting_s,
    }


def _model_path(label: str) -> str:
    if label == "tiny":
        from reset_core.models import build_tiny_llama

        path = tempfile.mkdtemp(prefix="tiny-llama-")
        build_tiny_llama(path)
        return path
    if label == "smollm2":
        from reset_core.models import default_model_path

        return str(default_model_path())
    raise SystemExit(f"unknown model {label!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=4, help="instruction examples (4)")
    ap.add_argument("--max-tokens", type=int, default=32, help="instruction max_tokens (32)")
    ap.add_argument("--samples", type=int, default=1, help="instruction n per setting (1)")
    ap.add_argument("--context-examples", type=int, default=4, help="context examples (4)")
    ap.add_argument(
        "--context-tokens", type=int, default=1500, help="NQ retrieval prompt length (1500)"
    )
    ap.add_argument("--context-max-tokens", type=int, default=64, help="context max_tokens (64)")
    ap.add_argument("--context-samples", type=int, default=2, help="context n per setting (2)")
    ap.add_argument("--batch-size", type=int, default=32, help="rows per generate call (32)")
    ap.add_argument("--models", default="tiny,smollm2", help="instruction: tiny, smollm2")
    ap.add_argument("--workloads", default="instruction,context", help="instruction, context")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for every path (default 1: on a machine whose cores other "
        "work shares, torch's default thread pool spin-waits and every path gets 10x slower; "
        "0 = torch's default)",
    )
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    workloads = set(args.workloads.split(","))
    rows = []
    for label in args.models.split(","):
        needed = "instruction" in workloads or (label == "smollm2" and "context" in workloads)
        if not needed:
            continue
        gen = TransformersGenerator(
            ModelSpec(model=_model_path(label), device="cpu", batch_size=args.batch_size)
        )
        if "instruction" in workloads:
            rows.append(instruction_workload(label, gen, args))
        if label == "smollm2" and "context" in workloads:
            rows.append(context_workload(label, gen, args))
        gen.close()

    print(f"\nCPU threads: {torch.get_num_threads()}; batch {args.batch_size}")
    if "instruction" in workloads:
        print(
            f"instruction: {args.examples} examples x 6 settings x {args.samples} samples, "
            f"max_tokens {args.max_tokens}"
        )
    if "context" in workloads:  # only the workloads that ran
        print(
            f"context: {args.context_examples} examples x 4 settings x "
            f"{args.context_samples} samples, max_tokens {args.context_max_tokens}"
        )
    print(
        f"{'workload':<12}{'model':<9}{'cands':>6}{'prompt tok':>11}{'ours c/s':>10}"
        f"{'+progress':>10}{'per-set c/s':>12}{'naive c/s':>10}{'ours/per-set':>13}"
        f"{'ours/naive':>11}"
    )

    def cell(r: dict, key: str, width: int) -> str:
        return f"{r[key]:>{width}.2f}" if key in r else f"{'-':>{width}}"

    for r in rows:
        print(
            f"{r['workload']:<12}{r['model']:<9}{r['candidates']:>6}"
            f"{r['prompt_tokens_mean']:>11.0f}{cell(r, 'ours_candidates_per_s', 10)}"
            f"{cell(r, 'ours_progress_candidates_per_s', 10)}"
            f"{cell(r, 'per_setting_candidates_per_s', 12)}"
            f"{cell(r, 'naive_candidates_per_s', 10)}"
            f"{cell(r, 'ours_over_per_setting_ratio', 13)}{cell(r, 'ratio', 11)}"
        )
    print(
        "Not shown: GPU, bigger models, KV-cache memory (unchanged), a one-setting n=1 grid "
        "(nothing to share), prompts split across a job's shards (read once per shard)."
    )
    figures = {}
    for r in rows:
        prefix = r["model"] if r["workload"] == "instruction" else f"context_{r['model']}"
        for key, value in r.items():
            if isinstance(value, float) and key != "prompt_tokens_mean":
                figures[f"{prefix}_{key}"] = round(value, 3)
        if r["workload"] == "context" and r["model"] == "smollm2":
            # The target: ours over the per-setting baseline, context-heavy, SmolLM2.
            figures["ours_over_per_setting_ratio"] = round(r["ours_over_per_setting_ratio"], 3)
            figures["context_prompt_tokens_mean"] = round(r["prompt_tokens_mean"], 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
