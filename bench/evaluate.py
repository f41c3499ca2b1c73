"""Evaluation: no second pipeline (part 1), and the paper's experiments end to end (part 2).

**Part 1, overhead.** An evaluation of N test examples × 2 checkpoints (the tiny Llama
and the same model with a LoRA adapter) against what a user would otherwise run: the
same sampling and judging jobs started by hand (``plan_sampling`` + ``start_sampling``
per checkpoint, then one ``create_judge_job``), each side on a fresh copy of the demo
database, both headless in this process (``jobs.run_here``), interleaved, after one
untimed warm-up (imports, first model loads). The judges are the offline panel plus an
LLM judge on the local OpenAI-compatible stand-in answering in ``--latency`` seconds (1 s
by default, a hosted model's order of magnitude) with 8 requests in flight. Target:
``overhead_ratio`` ≤ 1.15.

**Part 2, the real thing** (skipped by ``--quick``). The built-in ``mtl-tradeoff`` and
``decoding-ablation`` experiments run headless on the demo with the embedded SmolLM2
and the offline judges: MTL on references, RESET arms (sample, judge, select, curate,
train), one evaluation each. Their test set is stratified by source (``per_source``):
``--tests`` prompts of the IFEval benchmark (installed first) and as many of each context
test source, so every checkpoint gets an IFEval accuracy and a K-Precision with 95%
bootstrap CIs. The two experiments share their MTL checkpoint (``reuse_mtl``) and its
answers (candidates are keyed). Target: both within 30 minutes on a 2-core CPU. The
deltas are reported as measured; nothing is asserted about their direction.

What the figures do not show: part 1 runs on a tiny random model whose answers are
short, so its time is mostly job start-up and judging; part 2's deltas come from tiny
training sets (tens of examples, a few LoRA steps) and small test sets, so their CIs are
wide and say little about RESET at the paper's scale.

    python bench/evaluate.py --quick              # part 1 only: a few minutes
    python bench/evaluate.py                      # parts 1 and 2 (about half an hour)
    python bench/evaluate.py --n 24 --rounds 3 --examples 24 --tests 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reset_core import jobs  # noqa: E402
from reset_core.evaluation.config import GREEDY, EvalConfig, TestSet  # noqa: E402
from reset_core.evaluation.launch import create_evaluation, run_evaluation  # noqa: E402
from reset_core.ingest.demo import load_demo  # noqa: E402
from reset_core.judging.launch import (  # noqa: E402
    JudgePlan,
    create_judge_job,
    llm_spec,
    offline_specs,
    register_judges,
    sync_judge_job,
)
from reset_core.judging.llm_judge import LLMJudgeConfig  # noqa: E402
from reset_core.judging.worker import build_judge  # noqa: E402
from reset_core.paths import jobs_dir  # noqa: E402
from reset_core.sampling.config import ModelSpec, SampleSelection  # noqa: E402
from reset_core.sampling.launch import plan_sampling, start_sampling, sync_sampling  # noqa: E402
from reset_core.scoring.panels import Panel, save_panel  # noqa: E402
from reset_core.store import connect, one  # noqa: E402
from reset_core.training.launch import ensure_model, model_id_for  # noqa: E402

SPLITS = ["test_seen", "test_unseen"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- part 1


class Overhead:
    """Fresh demo databases with two tiny checkpoints and one judge panel."""

    def __init__(self, root: Path, n: int, base_url: str, max_tokens: int):
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        from reset_core.models import build_tiny_llama

        self.root, self.n = root, n
        self.tiny = root / "tiny"
        build_tiny_llama(self.tiny)
        self.adapter = root / "adapter"
        model = AutoModelForCausalLM.from_pretrained(self.tiny)
        lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(model, lora).save_pretrained(self.adapter)
        self.setting = GREEDY.model_copy(update={"max_tokens": max_tokens})
        self.llm = LLMJudgeConfig(model="judge", base_url=base_url, concurrency=8)

    def fresh(self, name: str):
        db = self.root / name / "studio.duckdb"
        con = connect(db)
        load_demo(con)
        base = ensure_model(con, str(self.tiny), name="tiny")
        tuned = model_id_for(str(self.tiny), str(self.adapter))
        con.execute(
            "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
            "training_run_id) VALUES (?, 'tiny-reset', ?, ?, 'reset', ?, 'run-1')",
            [tuned, str(self.tiny), str(self.adapter), base],
        )
        specs = [*offline_specs(), llm_spec(con, self.llm)]
        register_judges(con, specs)
        # Every judge on every aspect it scores, the stand-in's placeholder verdicts
        # included: the same work the direct run's judging job does.
        per_aspect: dict[str, list[str]] = {}
        for s in specs:
            judge = build_judge(s)
            for a in judge.aspects:
                per_aspect.setdefault(a, []).append(judge.judge_id)
        save_panel(con, Panel(name="bench", judges=per_aspect, include_placeholders=True))
        return con, db, specs, [(base, None), (tuned, str(self.adapter))]

    def direct(self, tag: str) -> tuple[float, tuple]:
        """What a user would otherwise run: the same jobs, started by hand."""
        con, db, specs, checkpoints = self.fresh(tag)
        t0 = time.perf_counter()
        for _, adapter in checkpoints:
            spec = ModelSpec(model=str(self.tiny), adapter=adapter, batch_size=16)
            selection = SampleSelection(splits=SPLITS, count=self.n)
            plan = plan_sampling(con, selection, spec, [self.setting])
            job = start_sampling(con, plan, jobs_dir(db), launch=False)
            jobs.run_here(con, job)
            sync_sampling(con, job)
        job = create_judge_job(con, db, specs, plan=JudgePlan(splits=SPLITS))
        jobs.run_here(con, job)
        sync_judge_job(con, job)
        return time.perf_counter() - t0, self._counts(con)

    def evaluation(self, tag: str) -> tuple[float, tuple]:
        con, db, _, checkpoints = self.fresh(tag)
        t0 = time.perf_counter()
        cfg = EvalConfig(
            checkpoints=[m for m, _ in checkpoints],
            tests=TestSet(splits=SPLITS, count=self.n),
            decoding=self.setting,
            panel="bench",
            batch_size=16,
        )
        p = run_evaluation(con, db, create_evaluation(con, db, cfg))
        elapsed = time.perf_counter() - t0
        if p.status != "done":
            raise SystemExit(f"evaluation did not finish: {p.describe()}")
        return elapsed, self._counts(con)

    @staticmethod
    def _counts(con) -> tuple:
        counts = (
            one(con, "SELECT count(*) FROM candidates")[0],
            one(con, "SELECT count(*) FROM judgments")[0],
        )
        con.close()
        return counts


def part1(args, root: Path) -> dict:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "devtools.openai_standin", "--port", str(port)]
        + ["--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        server.stdout.readline()  # "serving ..." once it listens
        o = Overhead(root, args.n, f"http://127.0.0.1:{port}/v1", args.max_tokens)
        o.direct("warm")  # imports and first model loads: paid once, by neither side
        direct, ours = [], []
        for r in range(args.rounds):
            order = [("direct", o.direct, direct), ("evaluation", o.evaluation, ours)]
            for name, run, out in order if r % 2 == 0 else order[::-1]:
                seconds, (n_cand, n_judg) = run(f"{name}-{r}")
                out.append(seconds)
                print(
                    f"  round {r} {name:<10} {seconds:6.1f} s  "
                    f"({n_cand} answers, {n_judg} verdicts)",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    d, e = statistics.median(direct), statistics.median(ours)
    print(
        f"part 1: {args.n} test examples x 2 checkpoints, median of {args.rounds}: "
        f"direct {d:.1f} s, evaluation {e:.1f} s, ratio {e / d:.3f} (target <= 1.15)"
    )
    return {
        "n_examples": args.n,
        "direct_s_median": round(d, 2),
        "evaluation_s_median": round(e, 2),
        "overhead_ratio": round(e / d, 3),
    }


# ----------------------------------------------------------------------------- part 2


def _ci(row, low: str, high: str) -> str:
    if row.get(low) is None or row.get(low) != row.get(low):
        return ""
    return f" [{row[low]:.3f}, {row[high]:.3f}]"


def part2(args, root: Path) -> dict:
    from reset_core.evaluation.benchmarks import install_benchmark
    from reset_core.evaluation.compare import compare
    from reset_core.evaluation.experiments import load_recipe, run_experiment, start_experiment

    db = root / "experiments" / "studio.duckdb"
    con = connect(db)
    load_demo(con)
    installed = install_benchmark(con, "ifeval")
    # IFEval for instruction following, the context test sources for K-Precision.
    context_sources = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT source FROM examples WHERE kind = 'context' "
            "AND split IN ('test_seen', 'test_unseen') ORDER BY 1"
        ).fetchall()
    ]
    tests = TestSet(
        splits=SPLITS, sources=["ifeval", *context_sources], count=args.tests, per_source=True
    )
    figures: dict = {"ifeval_installed": installed.get("installed")}
    t_all = time.perf_counter()
    for name in ("mtl-tradeoff", "decoding-ablation"):
        recipe = load_recipe(name, db)
        data = recipe.model_dump(mode="json")
        data["examples"]["count"] = args.examples
        data["evaluation"]["tests"] = tests.model_dump(mode="json")
        recipe = type(recipe).model_validate(data)
        t0 = time.perf_counter()
        exp_id = start_experiment(con, db, recipe)
        p = run_experiment(
            con,
            db,
            exp_id,
            on_progress=lambda p, name=name: print(f"  {name}: {p.message}", flush=True),
        )
        seconds = time.perf_counter() - t0
        if p.status != "done" or not p.evaluation_id:
            raise SystemExit(f"{name} did not finish: {p.message}")
        c = compare(con, p.evaluation_id)
        n_examples = one(
            con,
            "SELECT count(*) FROM evaluation_examples WHERE evaluation_id = ?",
            [p.evaluation_id],
        )[0]
        sizes = dict(
            con.execute(
                "SELECT e.source, count(*) FROM evaluation_examples v JOIN examples e "
                "USING (example_id) WHERE v.evaluation_id = ? GROUP BY 1 ORDER BY 1",
                [p.evaluation_id],
            ).fetchall()
        )
        print(
            f"\n{name}: {seconds / 60:.1f} min, {args.examples} seen examples, "
            f"{n_examples} test examples ({', '.join(f'{k} {v}' for k, v in sizes.items())})"
        )
        key = name.replace("-", "_")
        figures[f"{key}_min"] = round(seconds / 60, 2)
        figures[f"{key}_test_examples"] = n_examples
        ife = c.ifeval
        for label in dict.fromkeys(ife["label"]):
            rows = ife[ife["label"] == label].set_index("measure")
            line = []
            for measure in ("prompt_strict", "inst_strict"):
                r = rows.loc[measure].to_dict()
                line.append(f"{measure} {r['value']:.3f}{_ci(r, 'ci_low', 'ci_high')}")
                figures[f"{key}.{label}.ifeval_{measure}"] = round(r["value"], 4)
            kp = c.kprecision[c.kprecision["label"] == label]
            for _, r in kp.iterrows():
                r = r.to_dict()
                ci = _ci(r, "mean_ci_low", "mean_ci_high")
                line.append(f"K-Precision {r['split']} {r['mean']:.3f}{ci}")
                figures[f"{key}.{label}.kprecision_{r['split']}"] = round(r["mean"], 4)
            print(f"  {label:<28} " + "; ".join(line))
        print("  deltas against the baseline (as measured; no direction is asserted):")
        for _, r in c.plane.iterrows():
            r = r.to_dict()
            if not r["is_baseline"]:
                d_instr, d_faith = r["delta_instruction"], r["delta_faithfulness"]
                print(
                    f"    {r['label']:<26} instruction {d_instr:+.3f}  faithfulness {d_faith:+.3f}"
                )
                figures[f"{key}.{r['label']}.delta_instruction"] = round(d_instr, 4)
                figures[f"{key}.{r['label']}.delta_faithfulness"] = round(d_faith, 4)
    total = (time.perf_counter() - t_all) / 60
    print(f"\npart 2: both experiments in {total:.1f} min (target <= 30)")
    figures["experiments_total_min"] = round(total, 2)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="part 1 only (a few minutes)")
    ap.add_argument("--n", type=int, default=24, help="part 1: test examples (default 24)")
    ap.add_argument("--rounds", type=int, default=2, help="part 1: timed rounds per side (2)")
    ap.add_argument("--max-tokens", type=int, default=32, help="part 1: answer length (32)")
    ap.add_argument("--latency", type=float, default=1.0, help="part 1: LLM judge answer time, s")
    ap.add_argument(
        "--examples", type=int, default=24, help="part 2: seen examples per experiment (24)"
    )
    ap.add_argument("--tests", type=int, default=16, help="part 2: test examples per source (16)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    figures = part1(args, root)
    if not args.quick:
        figures.update(part2(args, root))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
