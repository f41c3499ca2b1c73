"""IFEval's verifiable checks, run by lm-eval's maintained code, offline.

Every IFEval verdict in RESET Studio (the IFEval judge, the lm-eval checks inside the
instruction proxy, the ``ifeval`` import preset's validation) goes through this module,
so lm-eval is imported one way:

- NLTK's ``punkt_tab`` data (two checks need it: ``length_constraints:number_sentences``
  and ``change_case:capital_word_frequency``) is looked up first in ``data/nltk_data``,
  where ``make setup`` extracts it from a PyPI wheel (see the Makefile): nothing is
  downloaded at run time.
- lm-eval calls ``nltk.download("punkt_tab")`` when it is imported and the data is
  missing. Offline that is a network call (an error printed, or a wait on a firewall), so
  the import runs with ``nltk.download`` replaced by a refusal; the two checks are then
  reported as unscored with :data:`PUNKT_MISSING` as the reason, never as failed.
- langdetect (three checks) and the draw a checker makes for an argument it rejects are
  seeded, so a verdict is the same on every run.

>>> r = check(["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}],
...           "Answer in lowercase, no commas.",
...           "Sure thing\\nhere is my answer written in plain lowercase english words")
>>> r.strict, r.loose
((True, False), (True, True))
>>> check(["no:such_check"], [{}], "p", "a").unscored
{'no:such_check': 'unknown to lm-eval 0.4.13'}
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import random
import sys
from importlib.metadata import version
from pathlib import Path
from unittest import mock

from reset_core.evaluation.ifeval import IFEvalResult
from reset_core.paths import NLTK_DATA_DIR

#: The PyPI wheel whose NLTK cache ships NLTK's own punkt_tab data (``make setup``
#: extracts the English model and its README from it; no other file of it is used).
PUNKT_WHEEL = "llama-index-core==0.14.25"
#: Where the punkt_tab folder sits inside that wheel.
PUNKT_IN_WHEEL = "llama_index/core/_static/nltk_cache/tokenizers/punkt_tab/"
PUNKT_RESOURCE = "tokenizers/punkt_tab"
#: The reason an instruction whose check needs punkt_tab is unscored without it.
PUNKT_MISSING = "needs NLTK's punkt_tab data, not installed (make setup puts it in data/nltk_data)"
#: The IFEval instructions whose lm-eval checker tokenizes sentences with punkt_tab.
NEEDS_PUNKT = frozenset(
    {"length_constraints:number_sentences", "change_case:capital_word_frequency"}
)


def use_bundled_nltk_data(folder: Path | None = None) -> bool:
    """Put ``folder`` (default :data:`NLTK_DATA_DIR`) first on NLTK's search path; True
    when punkt_tab is found there (or anywhere else NLTK looks)."""
    import nltk

    folder = folder or NLTK_DATA_DIR
    if str(folder) not in nltk.data.path:
        nltk.data.path.insert(0, str(folder))
    try:
        nltk.data.find(PUNKT_RESOURCE)
    except LookupError:
        return False
    return True


def _refuse_download(*args, **kwargs) -> bool:
    return False


@functools.cache
def lm_eval_ifeval():
    """lm-eval's ``lm_eval.tasks.ifeval.utils``, imported without touching the network."""
    found = use_bundled_nltk_data()
    if found or "lm_eval.tasks.ifeval.instructions_util" in sys.modules:
        from lm_eval.tasks.ifeval import utils
    else:
        import nltk

        # lm-eval downloads punkt_tab at import when NLTK cannot find it: refuse that
        # (offline it can only fail or hang), and drop the "Downloaded punkt_tab" it
        # prints regardless; the two checks needing the data then report unscored.
        with (
            mock.patch.object(nltk, "download", _refuse_download),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            from lm_eval.tasks.ifeval import utils
    # Three checks (response language, all lowercase, all capitals) ask langdetect, which
    # samples at random per call unless seeded: the same answer could flip verdicts
    # between runs. A fixed seed, as langdetect's README advises, makes them repeatable.
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0
    return utils


def registry() -> dict:
    """lm-eval's IFEval instruction checkers by instruction id."""
    return lm_eval_ifeval().instructions_registry.INSTRUCTION_DICT


def unknown_reason() -> str:
    return f"unknown to lm-eval {version('lm_eval')}"


def kwargs_problem(instruction_id: str, kwargs: object) -> str | None:
    """Why ``kwargs`` cannot configure ``instruction_id``'s checker, or None when it can.

    >>> kwargs_problem("punctuation:no_comma", {"num_words": 3})
    "unexpected argument(s) ['num_words'] for punctuation:no_comma (takes none)"
    """
    if instruction_id not in registry():
        return f"instruction id {instruction_id!r} is {unknown_reason()}"
    if kwargs is None:
        return None
    if not isinstance(kwargs, dict):
        return f"expected an object of arguments, got {type(kwargs).__name__}"
    takes = set(inspect.signature(registry()[instruction_id].build_description).parameters)
    takes.discard("self")
    bad = sorted(k for k, v in kwargs.items() if k not in takes and v is not None)
    if bad:
        allowed = ", ".join(sorted(takes)) or "none"
        return f"unexpected argument(s) {bad} for {instruction_id} (takes {allowed})"
    return None


@contextlib.contextmanager
def _seeded(instruction_id: str):
    """Python's ``random`` seeded by the instruction id for one check, then restored.

    A checker given an argument it rejects draws a random one instead (IFEval's own
    prompt 1122 asks for the "letter" ``#``, so lm-eval counts a random letter): seeded,
    the same answer gets the same verdict on every run, strict and loose alike.
    """
    state = random.getstate()
    random.seed(instruction_id)
    try:
        yield
    finally:
        random.setstate(state)


def check(
    instruction_ids: list[str], kwargs_list: list[dict | None], prompt: str, response: str
) -> IFEvalResult:
    """Strict and loose verdicts per instruction by lm-eval's
    ``test_instruction_following_strict`` / ``_loose``.

    Each instruction goes through them on its own (they check instructions
    independently), so one that cannot be checked (unknown id, NLTK data missing)
    is None with its reason while the others keep their verdicts.
    """
    utils = lm_eval_ifeval()
    known = registry()
    strict: list[bool | None] = []
    loose: list[bool | None] = []
    unscored: dict[str, str] = {}
    for iid, kwargs in zip(instruction_ids, kwargs_list, strict=True):
        reason = None
        if iid not in known:
            reason = unknown_reason()
        else:
            inp = utils.InputExample(
                key=0, instruction_id_list=[iid], prompt=prompt, kwargs=[kwargs or {}]
            )
            try:
                with _seeded(iid):
                    s = utils.test_instruction_following_strict(inp, response)
                with _seeded(iid):
                    lo = utils.test_instruction_following_loose(inp, response)
            except LookupError:  # NLTK data this checker needs is not installed
                reason = PUNKT_MISSING
        if reason is None:
            strict.append(s.follow_instruction_list[0])
            loose.append(lo.follow_instruction_list[0])
        else:
            strict.append(None)
            loose.append(None)
            unscored[iid] = reason
    return IFEvalResult(tuple(instruction_ids), tuple(strict), tuple(loose), unscored)


def extract_punkt(wheel: Path, nltk_data: Path | None = None) -> list[Path]:
    """Copy punkt_tab's English model and README out of :data:`PUNKT_WHEEL`'s file
    into ``nltk_data/tokenizers/punkt_tab`` (what ``make setup`` runs); the files
    written. Only English: IFEval's checkers tokenize English sentences."""
    import zipfile

    dest = (nltk_data or NLTK_DATA_DIR) / PUNKT_RESOURCE
    written = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            rel = name.removeprefix(PUNKT_IN_WHEEL)
            if rel == name or not (rel == "README" or rel.startswith("english/")):
                continue
            if rel.endswith("/"):
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zf.read(name))
            written.append(out)
    if not any(p.name == "sent_starters.txt" for p in written):
        raise RuntimeError(f"{wheel}: no English punkt_tab model under {PUNKT_IN_WHEEL}")
    return written


if __name__ == "__main__":  # make setup: python -m reset_core.judging.ifeval_checks WHEEL
    for p in extract_punkt(Path(sys.argv[1])):
        print(p)
