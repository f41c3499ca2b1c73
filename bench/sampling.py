"""Sampling throughput: our batched transformers backend vs a naive loop, same run, same inputs.

Ours: ``TransformersGenerator`` puts candidates from every example AND every
decoding setting into the same ``generate`` calls (``--batch-size`` rows each).
Ours + progress: the same, with the progress hooks a sampling job runs (prefill layer
hooks, a per-step ``StoppingCriteria``, ``progress.json`` written through a
``JobContext``), to show they cost nothing measurable.
Naive: one ``model.generate`` per candidate, with that candidate's temperature,
top-k, top-p and seed, which is what a straightforward script does.

Both use the same loaded model, the same examples (the first ``--examples`` seen
instructions of the demo set), the same grid (the default grid: temperatures 0.1,
0.5, 1.0 x top-k 20 / unrestricted, ``--samples`` each) and ``--max-tokens``.
Defaults (4 examples x 6 settings = 24 candidates of up to 32 tokens, on the tiny
random Llama and on SmolLM2-135M, one torch thread) finish in about 2 minutes on 2
busy CPU cores.

    .venv/bin/python bench/sampling.py [--examples 4] [--max-tokens 32] [--samples 1]
                                        [--batch-size 32] [--models tiny,smollm2] [--threads 1]

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
from reset_core.sampling.settings import default_grid  # noqa: E402
from reset_core.sampling.transformers_backend import TransformersGenerator  # noqa: E402


def demo_examples(k: int) -> list[tuple[str, str, str | None]]:
    rows = [json.loads(line) for line in DEMO_FILE.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == "seen"]
    return [(r["id"], r["instruction"], r.get("context")) for r in rows[:k]]


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
            kw = {"do_sample": False}
            if s.temperature > 0:
                kw = {
                    "do_sample": True,
                    "temperature": s.temperature,
                    "top_k": s.top_k if s.top_k > 0 else None,
                    "top_p": s.top_p,
                }
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=s.max_tokens,
                    pad_token_id=tok.pad_token_id,
                    **kw,
                )
            tokens += out.shape[1] - ids.shape[1]
            n += 1
    return n, tokens


def bench_model(label: str, path: str, args) -> dict:
    gen = TransformersGenerator(ModelSpec(model=path, device="cpu", batch_size=args.batch_size))
    grid = default_grid(max_tokens=args.max_tokens, n=args.samples)
    requests = [
        GenerationRequest(eid, build_messages(instr, ctx), s, tuple(range(s.n)))
        for eid, instr, ctx in demo_examples(args.examples)
        for s in grid
    ]
    # Warm up both paths (first-call allocations, lazy kernels) outside the timings.
    warm = [
        GenerationRequest(
            "warm", requests[0].messages, grid[0].model_copy(update={"max_tokens": 2}), (0,)
        )
    ]
    gen.generate(warm)
    naive(gen, warm)

    t0 = time.perf_counter()
    results = gen.generate(requests)
    ours_s = time.perf_counter() - t0
    ours_tokens = sum(r.completion_tokens or 0 for r in results)

    with tempfile.TemporaryDirectory() as job_dir:
        ctx = JobContext(Path(job_dir), {})
        ctx.start(len(results))
        t0 = time.perf_counter()
        with_progress = gen.generate(requests, progress=ctx.partial)
        progress_s = time.perf_counter() - t0
    assert [r.text for r in with_progress] == [r.text for r in results]

    t0 = time.perf_counter()
    n_naive, naive_tokens = naive(gen, requests)
    naive_s = time.perf_counter() - t0
    gen.close()
    return {
        "model": label,
        "candidates": len(results),
        "ours_candidates_per_s": len(results) / ours_s,
        "naive_candidates_per_s": n_naive / naive_s,
        "ratio": (len(results) / ours_s) / (n_naive / naive_s),
        "ours_progress_candidates_per_s": len(results) / progress_s,
        "progress_over_ours_ratio": ours_s / progress_s,
        "ours_tokens_per_s": ours_tokens / ours_s,
        "naive_tokens_per_s": naive_tokens / naive_s,
        "ours_s": ours_s,
        "naive_s": naive_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=4, help="demo examples (default 4)")
    ap.add_argument("--max-tokens", type=int, default=32, help="max_tokens of the grid (32)")
    ap.add_argument("--samples", type=int, default=1, help="n per setting (1)")
    ap.add_argument("--batch-size", type=int, default=32, help="ours: rows per generate call (32)")
    ap.add_argument("--models", default="tiny,smollm2", help="comma list of tiny, smollm2")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both paths (default 1: on a machine whose cores other "
        "work shares, torch's default thread pool spin-waits and both paths get 10x slower; "
        "0 = torch's default)",
    )
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for label in args.models.split(","):
        if label == "tiny":
            from reset_core.models import build_tiny_llama

            path = tempfile.mkdtemp(prefix="tiny-llama-")
            build_tiny_llama(path)
        elif label == "smollm2":
            from reset_core.models import default_model_path

            path = str(default_model_path())
        else:
            raise SystemExit(f"unknown model {label!r}")
        rows.append(bench_model(label, path, args))

    print(
        f"\nCPU threads: {torch.get_num_threads()}; grid 6 settings x {args.samples} samples; "
        f"{args.examples} examples; max_tokens {args.max_tokens}; batch {args.batch_size}"
    )
    print(
        f"{'model':<9}{'cands':>6}{'ours c/s':>10}{'+progress c/s':>15}{'naive c/s':>11}"
        f"{'ratio':>7}{'ours tok/s':>12}{'naive tok/s':>13}"
    )
    for r in rows:
        print(
            f"{r['model']:<9}{r['candidates']:>6}{r['ours_candidates_per_s']:>10.2f}"
            f"{r['ours_progress_candidates_per_s']:>15.2f}"
            f"{r['naive_candidates_per_s']:>11.2f}{r['ratio']:>7.2f}"
            f"{r['ours_tokens_per_s']:>12.1f}{r['naive_tokens_per_s']:>13.1f}"
        )
    figures = {}
    for r in rows:
        for key in (
            "ours_candidates_per_s",
            "naive_candidates_per_s",
            "ours_tokens_per_s",
            "naive_tokens_per_s",
            "ratio",
            "ours_progress_candidates_per_s",
            "progress_over_ours_ratio",
        ):
            figures[f"{r['model']}_{key}"] = round(r[key], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
