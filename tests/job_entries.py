"""Worker entry points used by tests/test_jobs.py (imported by the worker process)."""

import time

import pyarrow as pa


def write_items(ctx):
    """Write one candidate row per input item, skipping items already done (resume)."""
    items = ctx.read_input().column("item").to_pylist()
    done = ctx.done_keys("candidate_id")
    todo = [i for i in items if i not in done]
    ctx.start(len(items), n_done=len(items) - len(todo))
    for item in todo:
        if ctx.cancelled():
            return
        time.sleep(ctx.config.get("sleep", 0.0))
        ctx.write(
            pa.table(
                {
                    "candidate_id": [item],
                    "example_id": ["e"],
                    "model_id": ["m"],
                    "setting_id": ["s"],
                    "sample_index": [0],
                    "seed": [0],
                    "text": [f"text {item}"],
                    "engine": ["test"],
                }
            )
        )


def explode(ctx):
    ctx.start(3)
    raise MemoryError("CUDA out of memory (simulated engine crash)")
