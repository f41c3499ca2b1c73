"""A tiny experiment recipe for the tests: the tiny Llama, two arms on the same candidates."""

from __future__ import annotations

from pathlib import Path

from reset_core.evaluation.experiments import Recipe

#: Small and fast for the tiny model: a learning rate it notices, few tokens.
TINY_TRAIN = {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 128}


def tiny_recipe(model_dir: Path, **changes) -> Recipe:
    data = {
        "name": "tiny",
        "description": "two arms on the same candidates, tiny model",
        "base_model": str(model_dir),
        "examples": {"count": 6, "seed": 1},
        "mtl": {"train": {**TINY_TRAIN, "learning_rate": 1e-3}},
        "arms": [
            {
                "name": "w2",
                "weight": 2.0,
                "grid": {"temperatures": [0.7, 1.0], "top_ks": [-1], "max_tokens": 8},
                "judges": ["rouge_l", "instruction_proxy", "knowledge_precision"],
                "train": TINY_TRAIN,
            },
            {
                "name": "w0",
                "weight": 0.0,
                "grid": {"temperatures": [0.7, 1.0], "top_ks": [-1], "max_tokens": 8},
                "judges": ["rouge_l", "instruction_proxy", "knowledge_precision"],
                "train": TINY_TRAIN,
            },
        ],
        "evaluation": {
            "checkpoints": ["base", "mtl", "w2", "w0"],
            "baseline": "mtl",
            "tests": {"count": 4},
            "max_tokens": 8,
            "batch_size": 8,
        },
    }
    data.update(changes)
    return Recipe.model_validate(data)
