"""End to end with the embedded SmolLM2: `reset-studio sample` runs a worker and stores candidates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reset_core.models import DEFAULT_MODEL_NAME
from reset_core.paths import DEFAULT_MODEL_DIR


@pytest.mark.slow
@pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").exists(), reason="embedded model not prepared"
)
def test_cli_samples_demo_examples_with_smollm2(tmp_path):
    from reset_core.store import connect

    db = tmp_path / "e2e.duckdb"
    cli = [sys.executable, "-m", "reset_core.cli", "--db", str(db)]
    subprocess.run([*cli, "db", "init", "--demo"], check=True, capture_output=True)
    run = subprocess.run(
        [
            *cli,
            "sample",
            "--kinds",
            "instruction",
            "--count",
            "3",
            "--max-tokens",
            "16",
            "--samples",
            "1",
            "--poll-s",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 examples x 6 settings: 18 candidates" in run.stdout
    con = connect(db)
    rows = con.execute(
        "SELECT c.text, c.finish_reason, c.completion_tokens, c.seed, d.temperature, m.name "
        "FROM candidates c JOIN decoding_settings d USING (setting_id) JOIN models m USING (model_id)"
    ).fetchall()
    assert len(rows) == 18
    assert {r[5] for r in rows} == {DEFAULT_MODEL_NAME}  # the name pages show; ids hash weights
    assert all(r[1] in ("stop", "length") and 1 <= r[2] <= 17 for r in rows)
    # A real instruct model answers in words: most candidates are non-trivial text.
    assert sum(len(r[0].split()) >= 3 for r in rows) >= 15
    assert len({r[3] for r in rows}) == 18
    assert con.execute("SELECT status FROM jobs").fetchall() == [("done",)]


@pytest.mark.slow
@pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").exists(), reason="embedded model not prepared"
)
def test_smollm2_long_context_is_read_once_and_continues_like_plain_generate():
    """A 1.3k-token context example and a short NQ question under two settings: each
    prompt is read once, and greedy decoding from the shared prefill gives the words
    plain ``generate`` gives when it reads the whole prompt itself."""
    import json

    import torch

    from reset_core.paths import DEMO_FILE
    from reset_core.sampling.base import GenerationRequest, build_messages
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.settings import DecodingSetting
    from reset_core.sampling.transformers_backend import TransformersGenerator

    rows = {r["id"]: r for r in map(json.loads, DEMO_FILE.read_text().splitlines())}
    prompts = {eid: build_messages(rows[eid]["instruction"], rows[eid]["context"])
               for eid in ("ctx-144", "nq-0")}  # fmt: skip
    gen = TransformersGenerator(ModelSpec(model=str(DEFAULT_MODEL_DIR), device="cpu"))
    greedy = DecodingSetting(temperature=0.0, max_tokens=16)
    hot = DecodingSetting(temperature=0.7, top_k=20, max_tokens=16, n=2)
    requests = [
        GenerationRequest(eid, msgs, s, tuple(range(s.n)))
        for eid, msgs in prompts.items()
        for s in (greedy, hot)
    ]
    reads: list[int] = []
    hook = gen.model.get_input_embeddings().register_forward_hook(
        lambda m, args, out: reads.append(args[0].shape[0]) if args[0].shape[1] > 1 else None
    )
    try:
        results = gen.generate(requests)
    finally:
        hook.remove()
    assert len(results) == 6 and reads == [2]
    long_ids = gen.prompt_ids(prompts["ctx-144"])
    assert len(long_ids) > 1000
    ids = torch.tensor([long_ids])
    with torch.inference_mode():
        plain = gen.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=16,
            pad_token_id=gen.tokenizer.pad_token_id,
        )
    want = gen.tokenizer.decode(plain[0, ids.shape[1] :], skip_special_tokens=True)
    [ours] = [r for r in results if (r.example_id, r.setting_id) == ("ctx-144", greedy.setting_id)]
    assert ours.text == want and ours.prompt_tokens == len(long_ids)
    for r in results:
        assert r.finish_reason in ("stop", "length") and 1 <= r.completion_tokens <= 17
        assert r.finish_reason == "stop" or r.completion_tokens == 16
    gen.close()
