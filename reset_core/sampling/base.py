"""The ``Generator`` protocol every sampling backend implements, and what it consumes and returns.

Batch-first, like vLLM's ``LLM.generate``: a generator takes a list of requests (one
per example and decoding setting, each asking for some sample indices) and returns
one result per candidate. How it batches is its own business; the contract test in
``tests/test_sampling_generators.py`` holds every implementation to the same rules.

>>> build_messages("Who wrote Hamlet?", None)
[{'role': 'user', 'content': 'Who wrote Hamlet?'}]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reset_core.sampling.settings import DecodingSetting


def build_messages(instruction: str, context: str | None) -> list[dict[str, str]]:
    """The chat prompt for one example: the instruction, then the context when it has one.

    >>> build_messages("Summarize.", "The sky is blue.")[0]["content"]
    'Summarize.\\n\\nContext:\\nThe sky is blue.'
    """
    content = instruction if not context else f"{instruction}\n\nContext:\n{context}"
    return [{"role": "user", "content": content}]


@dataclass(frozen=True)
class GenerationRequest:
    """One example under one setting; ``sample_indices`` are the samples still wanted."""

    example_id: str
    messages: list[dict[str, str]]
    setting: DecodingSetting
    sample_indices: tuple[int, ...]


@dataclass(frozen=True)
class GenerationResult:
    """One candidate. ``seed`` is the seed the engine was given for it (see each backend)."""

    example_id: str
    setting_id: str
    sample_index: int
    seed: int
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float


class ModelLoadError(RuntimeError):
    """The model could not be loaded or reached; the message names what and why."""


#: ``progress(done, detail)``: candidates of this ``generate`` call finished so far,
#: fractional while they decode (a candidate 12 of 48 tokens in counts 0.25), and a
#: short note on what runs (``"token 12/48"``) or None. Called often; must be cheap.
Progress = Callable[[float, "str | None"], None]

#: ``status(text)``: what a slow model load is doing (``"importing torch"``).
Status = Callable[[str], None]


class Generator(Protocol):
    """A sampling backend. Construct with a :class:`ModelSpec` (and optionally a
    ``status`` hook that hears the steps of a slow load); ``close()`` frees it."""

    engine: str

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress | None = None
    ) -> list[GenerationResult]:
        """One result per requested sample index of every request, in any order.

        ``progress`` hears how far the call is while it runs, as finely as the engine
        can tell (every decoding step, every answered request); it ends at the number
        of results.
        """
        ...

    def close(self) -> None: ...
