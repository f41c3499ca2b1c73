"""Decoding settings: one validated value object with vLLM/OpenAI field names; a grid is a list.

RESET samples every example under several settings so the candidate pool holds both
conservative and creative answers. A setting's id hashes its values, so the same
setting is the same row in ``decoding_settings`` whoever created it, and candidate
ids (example, model, setting, sample index) are stable across reruns: that is what
makes resuming a job and re-ingesting its shards idempotent.

People read a setting by its values, never by its id: :func:`setting_label` (and its
SQL twin :func:`setting_label_sql`, for queries) is the one rule for that text.

>>> s = DecodingSetting(temperature=0.7, top_k=50)
>>> s.setting_id == DecodingSetting(temperature=0.7, top_k=50).setting_id
True
>>> s.label()
'T 0.7 · top-k 50'
>>> len(default_grid())
6
>>> DecodingSetting(temperature=3)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for DecodingSetting
temperature
  Input should be less than or equal to 2...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: The first-run defaults of the Sample page and ``reset-studio sample`` (one place for
#: both): a 3 x 2 grid at 64 new tokens, so a first run on a CPU laptop takes about a
#: minute. Raise max_tokens (and the example count) for real data; see the README.
DEFAULT_TEMPERATURES = (0.1, 0.5, 1.0)
DEFAULT_TOP_KS = (20, -1)
DEFAULT_MAX_TOKENS = 64

#: Candidate and request seeds stay below 2**63 so they fit BIGINT and every engine's seed.
_SEED_MASK = (1 << 63) - 1


class DecodingSetting(BaseModel):
    """How to sample: the field names and meanings of vLLM's ``SamplingParams``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(
        0.7,
        ge=0.0,
        le=2.0,
        description="Softmax temperature, 0 to 2. 0 is greedy (always the likeliest token); "
        "higher gives more varied, creative answers.",
    )
    top_k: int = Field(
        -1,
        ge=-1,
        le=100_000,
        description="Sample only from the k likeliest tokens; -1 = unrestricted (as in vLLM). "
        "0 is not allowed: use -1.",
    )
    top_p: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: keep the smallest set of tokens whose probability adds "
        "up to top_p, above 0 and at most 1 (1 = off).",
    )
    max_tokens: int = Field(
        256, ge=1, le=32_768, description="Most new tokens per candidate, 1 to 32768."
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**62,
        description="Base seed of this setting; each candidate's own seed is derived from it, "
        "the example and the sample index, and recorded with the candidate.",
    )
    n: int = Field(1, ge=1, le=64, description="Samples per example under this setting, 1 to 64.")

    @field_validator("top_k")
    @classmethod
    def _top_k_not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("0 would allow no token; use -1 for unrestricted")
        return v

    @property
    def setting_id(self) -> str:
        """Hash of the values: equal settings share an id."""
        return "s:" + _hash(self.model_dump(mode="json"))[:16]

    def label(self) -> str:
        """How people read this setting: ``T 0.7 · top-k 50`` (see :func:`setting_label`)."""
        return setting_label(self.temperature, self.top_k, self.top_p, self.n)

    # Seeds hash the whole setting (its base seed included), not the base seed alone:
    # two settings of a grid must not share random streams, or a low and a slightly
    # higher temperature would often give the very same text.
    def request_seed(self, example_id: str) -> int:
        """The seed of one (example, setting) request, for engines that sample ``n`` at once."""
        return _seed(self.setting_id, example_id)

    def candidate_seed(self, example_id: str, sample_index: int) -> int:
        """The seed of one candidate, for engines that seed every sample on its own."""
        return _seed(self.setting_id, example_id, sample_index)


#: What a setting's label shows: the help of every column or axis of them.
SETTING_HELP = (
    "Temperature and top-k (top-p and n when not 1; max_tokens or seed when another setting "
    "differs only in them). The setting's id is in the hover."
)


def setting_label(
    temperature: float,
    top_k: int,
    top_p: float = 1.0,
    n: int = 1,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> str:
    """A decoding setting as people read it: ``T 0.5 · top-k 20``, never its ``s:`` id.

    Temperature and top-k always (``top-k all`` when unrestricted); top-p and n only
    when they differ from their defaults (1 and 1). max_tokens and seed only when
    given: they rarely vary inside a grid, so :func:`setting_labels_of` (and the SQL
    label) add them just where two settings would otherwise read the same.

    >>> setting_label(0.5, 20)
    'T 0.5 · top-k 20'
    >>> setting_label(1.0, -1, top_p=0.9, n=4)
    'T 1 · top-k all · top-p 0.9 · n 4'
    >>> setting_label(0.5, 20, max_tokens=256, seed=3)
    'T 0.5 · top-k 20 · max_tokens 256 · seed 3'
    """
    k = "all" if top_k == -1 else str(top_k)
    text = f"T {temperature:g} · top-k {k}"
    if top_p != 1:
        text += f" · top-p {top_p:g}"
    if n != 1:
        text += f" · n {n}"
    if max_tokens is not None:
        text += f" · max_tokens {max_tokens}"
    if seed is not None:
        text += f" · seed {seed}"
    return text


def setting_labels_of(settings: Iterable[DecodingSetting | Mapping[str, Any]]) -> list[str]:
    """Labels for settings shown together, told apart when only max_tokens or seed differ.

    A setting's label names max_tokens (or seed) exactly when another setting in
    ``settings`` has the same temperature, top-k, top-p and n but a different
    max_tokens (or seed), so no two distinct settings ever share a label. Missing
    fields take :class:`DecodingSetting`'s defaults.

    >>> setting_labels_of([{"temperature": 0.5, "top_k": 20, "max_tokens": 64},
    ...                    {"temperature": 0.5, "top_k": 20, "max_tokens": 256},
    ...                    {"temperature": 1.0, "top_k": 20, "max_tokens": 64}])
    ['T 0.5 · top-k 20 · max_tokens 64', 'T 0.5 · top-k 20 · max_tokens 256', 'T 1 · top-k 20']
    """
    fields = DecodingSetting.model_fields
    rows = [
        {f: (s.get(f) if s.get(f) is not None else fields[f].default) for f in fields}
        for s in (x.model_dump() if isinstance(x, DecodingSetting) else dict(x) for x in settings)
    ]
    base = [(r["temperature"], r["top_k"], r["top_p"], r["n"]) for r in rows]
    varies: dict[tuple, dict[str, set]] = {}
    for b, r in zip(base, rows, strict=True):
        group = varies.setdefault(b, {"max_tokens": set(), "seed": set()})
        group["max_tokens"].add(r["max_tokens"])
        group["seed"].add(r["seed"])
    return [
        setting_label(
            *b,
            max_tokens=r["max_tokens"] if len(varies[b]["max_tokens"]) > 1 else None,
            seed=r["seed"] if len(varies[b]["seed"]) > 1 else None,
        )
        for b, r in zip(base, rows, strict=True)
    ]


def setting_label_sql(alias: str = "d") -> str:
    """The SQL twin of :func:`setting_labels_of` over a ``decoding_settings`` row ``alias``.

    The label of :func:`setting_label`, plus max_tokens (or seed) when another stored
    setting matches on everything else but differs in it, so labels stay unique on
    every chart, table and filter. NULL when the row is missing (a LEFT JOIN that found
    nothing), so callers can ``coalesce`` to the id. A test checks both give the same
    text.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> s = DecodingSetting(temperature=1.0, top_k=-1, top_p=0.9, n=4)
    >>> _ = con.execute("INSERT INTO decoding_settings VALUES (?, ?, ?, ?, ?, ?, ?)",
    ...     [s.setting_id, s.temperature, s.top_k, s.top_p, s.max_tokens, s.seed, s.n])
    >>> con.execute(f"SELECT {setting_label_sql('d')} FROM decoding_settings d").fetchone()[0]
    'T 1 · top-k all · top-p 0.9 · n 4'
    >>> _ = con.execute("INSERT INTO decoding_settings VALUES ('s:x', 1.0, -1, 0.9, 64, 0, 4)")
    >>> sorted(r[0] for r in con.execute(f"SELECT {setting_label_sql('d')} FROM decoding_settings d").fetchall())
    ['T 1 · top-k all · top-p 0.9 · n 4 · max_tokens 256', 'T 1 · top-k all · top-p 0.9 · n 4 · max_tokens 64']
    """
    a = alias

    def differs_only_in(field: str) -> str:
        # Another stored setting reads the same but for ``field``: name it, then.
        return (
            "EXISTS (SELECT 1 FROM decoding_settings o WHERE "
            f"o.temperature = {a}.temperature AND o.top_k = {a}.top_k AND "
            f"o.top_p = {a}.top_p AND o.n = {a}.n AND o.{field} <> {a}.{field})"
        )

    return (
        f"('T ' || printf('%g', {a}.temperature) || ' · top-k ' || "
        f"CASE WHEN {a}.top_k = -1 THEN 'all' ELSE {a}.top_k::VARCHAR END || "
        f"CASE WHEN {a}.top_p <> 1 THEN ' · top-p ' || printf('%g', {a}.top_p) ELSE '' END || "
        f"CASE WHEN {a}.n <> 1 THEN ' · n ' || {a}.n::VARCHAR ELSE '' END || "
        f"CASE WHEN {differs_only_in('max_tokens')} "
        f"THEN ' · max_tokens ' || {a}.max_tokens::VARCHAR ELSE '' END || "
        f"CASE WHEN {differs_only_in('seed')} THEN ' · seed ' || {a}.seed::VARCHAR ELSE '' END)"
    )


def setting_order_sql(alias: str = "d") -> str:
    """ORDER BY terms listing settings as people scan them: cooler first, then top-k
    from the most restrictive to unrestricted (``-1`` last), then top-p, n, max_tokens
    and seed.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute("INSERT INTO decoding_settings VALUES ('a', 0.5, -1, 1, 64, 0, 1), "
    ...                 "('b', 0.5, 20, 1, 64, 0, 1), ('c', 0.1, -1, 1, 64, 0, 1)")
    >>> sql = f"SELECT {setting_label_sql('d')} FROM decoding_settings d ORDER BY {setting_order_sql('d')}"
    >>> [r[0] for r in con.execute(sql).fetchall()]
    ['T 0.1 · top-k all', 'T 0.5 · top-k 20', 'T 0.5 · top-k all']
    """
    a = alias
    return (
        f"{a}.temperature, CASE WHEN {a}.top_k = -1 THEN 2147483647 ELSE {a}.top_k END, "
        f"{a}.top_p, {a}.n, {a}.max_tokens, {a}.seed"
    )


def _hash(value: Any) -> str:
    return hashlib.blake2b(
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(), digest_size=16
    ).hexdigest()


def _seed(*parts: Any) -> int:
    return int(_hash(list(parts))[:16], 16) & _SEED_MASK


def candidate_id(example_id: str, model_id: str, setting_id: str, sample_index: int) -> str:
    """The key of one candidate: hash(example, model, setting, sample index).

    >>> candidate_id("e1", "m1", "s:1", 0) == candidate_id("e1", "m1", "s:1", 0)
    True
    """
    return "c:" + _hash([example_id, model_id, setting_id, sample_index])[:24]


def default_grid(
    temperatures: Iterable[float] = DEFAULT_TEMPERATURES,
    top_ks: Iterable[int] = DEFAULT_TOP_KS,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    n: int = 1,
    seed: int = 0,
) -> list[DecodingSetting]:
    """Low to high temperature crossed with a restrictive and an unrestricted top-k.

    >>> [s.label() for s in default_grid(temperatures=(0.1,), top_ks=(20, -1), max_tokens=64)]
    ['T 0.1 · top-k 20', 'T 0.1 · top-k all']
    """
    return [
        DecodingSetting(temperature=t, top_k=k, top_p=1.0, max_tokens=max_tokens, seed=seed, n=n)
        for t in temperatures
        for k in top_ks
    ]


class GridRejected(ValueError):
    """A grid that cannot run; ``problems`` lists each bad row and field with its bound."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid decoding grid: " + "; ".join(problems))


def parse_grid(rows: Iterable[Mapping[str, Any] | DecodingSetting]) -> list[DecodingSetting]:
    """Validate a grid given as dicts (from a table editor or a file); reject it whole.

    Every problem is reported at once, as ``setting 2: temperature: Input should be
    less than or equal to 2``. Rows are numbered from 1 as a person counts them.

    >>> parse_grid([{"temperature": 0.2}])[0].temperature
    0.2
    >>> parse_grid([{"temperature": 5}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    reset_core.sampling.settings.GridRejected: invalid decoding grid: setting 1: temperature: ...
    """
    settings: list[DecodingSetting] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        if isinstance(row, DecodingSetting):
            s = row
        else:
            # Table editors give NaN/None for blank cells: a blank cell means "the default".
            clean = {k: v for k, v in dict(row).items() if v is not None and v == v}
            try:
                s = DecodingSetting(**clean)
            except ValidationError as e:
                for err in e.errors():
                    field = ".".join(str(p) for p in err["loc"]) or "setting"
                    msg = err["msg"].removeprefix("Value error, ")
                    problems.append(f"setting {i}: {field}: {msg}")
                continue
        if s.setting_id in seen:
            problems.append(f"setting {i} repeats setting {seen[s.setting_id]}")
            continue
        seen[s.setting_id] = i
        settings.append(s)
    if not settings and not problems:
        problems.append("the grid is empty: add at least one setting")
    if problems:
        raise GridRejected(problems)
    return settings


def load_grid_file(path: str) -> list[DecodingSetting]:
    """Read a grid from a JSON list or a JSONL file of setting objects."""
    from pathlib import Path

    text = Path(path).read_text()
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return parse_grid(rows)
