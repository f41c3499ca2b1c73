"""The bundled demo set: no example refers to text it does not carry."""

from __future__ import annotations

import doctest
import importlib.util
import json

import pytest

from reset_core.paths import DATA_DIR, DEMO_FILE


def _builder():
    spec = importlib.util.spec_from_file_location("build_demo_set", DATA_DIR / "build_demo_set.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rule_examples_in_the_script_hold():
    result = doctest.testmod(_builder())
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.parametrize(
    "instruction",
    [
        "Extract names of all weapons mentioned in the paragraph below:",
        "Based on the following passage, give 3 reasons why it passed.",
        "Given a reference text about Audrey Blackman, tell me her parents' names.",
        "Summarise the basic rules of soccer, without using examples from the text",
        "What is the main idea of this text?",
        "Answer using the given text.",
        "Which of the following films came out in the 40s?",
    ],
)
def test_instructions_pointing_at_missing_text_are_flagged(instruction):
    build = _builder()
    assert build.refers_to_missing_text(instruction, None)
    assert build.refers_to_missing_text(instruction, "The passage itself.") is None


@pytest.mark.parametrize(
    "instruction",
    [
        "Classify each of the following as a country or state: California, Texas, Ohio.",
        "Which of these are movies that Adam Sandler starred in? Tommy Boy, Click, Hustle",
        "Classify the below numbers into odd or even.\n1, 4, 5, 333",
        "Choose a topic for the following article.\n\nWhales are a widely distributed and "
        "diverse group of fully aquatic placental marine mammals.",
        "Write a short story about a lighthouse keeper.",
    ],
)
def test_instructions_that_carry_their_text_are_kept(instruction):
    assert _builder().refers_to_missing_text(instruction, None) is None


def test_the_bundled_demo_set_follows_the_rule():
    build = _builder()
    rows = [json.loads(line) for line in DEMO_FILE.open()]
    flagged = [
        (r["source"], r["id"])
        for r in rows
        if build.refers_to_missing_text(r["instruction"], r["context"])
    ]
    assert flagged == []
    ids = {(r["source"], r["id"]) for r in rows}
    assert ("dolly", "open-124") not in ids  # "…in the paragraph below:" with no paragraph
    assert ("dolly", "open-1") in ids  # a list it carries after the colon stays
