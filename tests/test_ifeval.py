"""IFEval offline: lm-eval's checks on crafted answers (strict and loose), the unscored
path without NLTK's data, the ``ifeval`` import preset, the built-in benchmark and the
accuracy over judged verdicts."""

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import FIXTURES

from reset_core.evaluation.benchmarks import (
    BENCHMARKS,
    benchmark_status,
    benchmark_tests,
    install_benchmark,
)
from reset_core.evaluation.ifeval import accuracy, parse_result
from reset_core.ingest.config import ImportOptions, ImportRejected
from reset_core.ingest.importer import import_file
from reset_core.judging.base import JudgeItem
from reset_core.judging.ifeval_checks import (
    NEEDS_PUNKT,
    PUNKT_IN_WHEEL,
    PUNKT_MISSING,
    check,
    extract_punkt,
    use_bundled_nltk_data,
)
from reset_core.judging.metric_judges import METRIC_JUDGES

ROOT = Path(__file__).resolve().parent.parent
LOWER = "here is a plain answer written entirely in lowercase english words for the reader today"
END = "Is there anything else I can help with?"

# (instruction id, kwargs, answer, strict, loose): verdicts worked out by hand from
# IFEval's rules; loose also accepts the answer without its first/last line or ``*``.
CASES = [
    ("punctuation:no_comma", {}, "no commas here at all", True, True),
    ("punctuation:no_comma", {}, "one, two", False, False),
    ("change_case:english_lowercase", {}, LOWER, True, True),
    ("change_case:english_lowercase", {}, "Sure! Here it is:\n" + LOWER, False, True),
    ("change_case:english_capital", {}, LOWER.upper(), True, True),
    ("change_case:english_capital", {}, LOWER, False, False),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True, True),
    ("detectable_format:json_format", {}, "not json", False, False),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 5}, "a b c d", True, True),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 5}, "a b c d e", False, False),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 3}, "a b", False, False),
    # the two checks that split with NLTK's punkt_tab
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}, "One here. Two here.", True, True),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}, "Intro line here.\nOne here. Two here.", False, True),
    ("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 2}, "Only one sentence here.", False, False),
    ("change_case:capital_word_frequency", {"capital_relation": "at least", "capital_frequency": 2}, "THE BIG dog", True, True),
    ("change_case:capital_word_frequency", {"capital_relation": "at least", "capital_frequency": 2}, "The BIG dog", False, False),
    ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 2}, "The BIG dog", True, True),
    ("startend:end_checker", {"end_phrase": END}, "Answer.\n" + END, True, True),
    ("startend:end_checker", {"end_phrase": END}, f"Answer.\n**{END}**", False, True),
    ("startend:quotation", {}, '"all quoted"', True, True),
    ("startend:quotation", {}, "not quoted", False, False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and *two*", True, True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* only", False, False),
    ("detectable_format:title", {}, "<<A Title>>\nbody", True, True),
    ("detectable_format:title", {}, "A Title\nbody", False, False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b", True, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b\n* c", False, True),  # loose: without its last line
    ("keywords:existence", {"keywords": ["apple", "pear"]}, "apple and pear", True, True),
    ("keywords:existence", {"keywords": ["apple", "pear"]}, "apple only", False, False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", True, True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi. Bye.", False, False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "Say hi. hi", True, True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "hi", False, False),
    # an empty answer follows nothing, strict or loose
    ("punctuation:no_comma", {}, "   ", False, False),
]  # fmt: skip


def test_punkt_tab_is_installed_offline_by_make_setup():
    assert use_bundled_nltk_data(), "NLTK's punkt_tab is missing: run make setup"
    assert (ROOT / "data/nltk_data/tokenizers/punkt_tab/english/sent_starters.txt").is_file()


@pytest.mark.parametrize("iid, kwargs, answer, strict, loose", CASES)
def test_lm_eval_checks_give_the_known_verdicts(iid, kwargs, answer, strict, loose):
    r = check([iid], [kwargs], "Say hi.", answer)
    assert (r.strict, r.loose, r.unscored) == ((strict,), (loose,), {})


def test_every_instruction_type_of_the_benchmark_is_covered_by_a_case():
    used = {
        iid
        for line in BENCHMARKS["ifeval"].file.read_text().splitlines()
        for iid in json.loads(line)["instruction_id_list"]
    }
    assert len(used) == 25
    assert {c[0] for c in CASES} >= NEEDS_PUNKT
    # every id is one lm-eval knows and runs: the 541 prompts' own kwargs, the prompt as
    # the answer (a plain smoke run, verdicts not asserted), nothing unscored
    for line in BENCHMARKS["ifeval"].file.read_text().splitlines()[:80]:
        row = json.loads(line)
        r = check(row["instruction_id_list"], row["kwargs"], row["prompt"], row["prompt"])
        assert r.unscored == {} and None not in r.strict


def _item(ids, kwargs, text, instruction="Say hi."):
    meta = {"ifeval": {"instruction_id_list": ids, "kwargs": kwargs}}
    return JudgeItem(
        "e", "c", "instruction", instruction, None, None, "instruction", text, meta=meta
    )


def test_judge_stores_strict_and_loose_and_accuracy_counts_them():
    judge = METRIC_JUDGES["ifeval"]()
    assert judge.judge_id == "metric:ifeval:v1"  # scoring meaning unchanged
    two = ["punctuation:no_comma", "length_constraints:number_sentences"]
    kw = [{}, {"relation": "less than", "num_sentences": 3}]
    a, b, c = judge.judge(
        [
            _item(two, kw, "No commas. Two sentences."),  # both followed
            _item(two, kw, "Intro line here.\nOne here. Two here."),  # loose only
            _item(two, kw, "One, two. Three. Four."),  # neither
        ]
    )
    assert (a.score, b.score, c.score) == (1.0, 0.5, 0.0)
    assert "1/2 verifiable instructions followed (strict), 2/2 loose" in b.rationale
    assert "not followed (strict): length_constraints:number_sentences" in b.rationale
    results = [parse_result(j.raw_output) for j in (a, b, c)]
    assert [r.strict for r in results] == [(True, True), (True, False), (False, False)]
    assert [r.loose for r in results] == [(True, True), (True, True), (False, False)]
    acc = accuracy(results)
    assert acc["prompt_strict"] == pytest.approx(1 / 3)
    assert acc["prompt_loose"] == pytest.approx(2 / 3)
    assert acc["inst_strict"] == pytest.approx(3 / 6)
    assert acc["inst_loose"] == pytest.approx(4 / 6)
    assert (acc["n_prompts"], acc["n_unscored"]) == (3, 0)


def test_judge_names_what_it_cannot_check_and_never_fails_it():
    judge = METRIC_JUDGES["ifeval"]()
    unknown, mismatched = judge.judge(
        [
            _item(["punctuation:no_comma", "no:such_check"], [{}, {}], "fine"),
            _item(["punctuation:no_comma"], [{}, {}], "fine"),
        ]
    )
    assert unknown.score == 1.0 and "no:such_check (unknown to lm-eval" in unknown.rationale
    r = parse_result(unknown.raw_output)
    assert r.strict == (True, None) and r.prompt_strict is None
    assert (
        mismatched.status == "not_applicable" and "2 kwargs for 1 instruction" in mismatched.error
    )


HIDDEN = textwrap.dedent(
    """
    import json, socket, sys
    from pathlib import Path

    def no_network(*args, **kwargs):
        raise AssertionError("tried the network")

    socket.create_connection = no_network
    socket.socket.connect = no_network
    import nltk

    empty = sys.argv[1]
    nltk.data.path[:] = [empty]  # hide every NLTK data folder
    import reset_core.judging.ifeval_checks as checks

    checks.NLTK_DATA_DIR = Path(empty)
    from reset_core.judging.base import JudgeItem
    from reset_core.judging.metric_judges import IFEvalJudge

    def item(ids, kwargs):
        meta = {"ifeval": {"instruction_id_list": ids, "kwargs": kwargs}}
        return JudgeItem("e", "c", "instruction", "p", None, None, "instruction",
                         "No commas. THE END.", meta=meta)

    out = IFEvalJudge().judge([
        item(["punctuation:no_comma", "length_constraints:number_sentences"],
             [{}, {"relation": "less than", "num_sentences": 3}]),
        item(["change_case:capital_word_frequency"],
             [{"capital_relation": "at least", "capital_frequency": 2}]),
    ])
    print("RESULT " + json.dumps([[j.status, j.score, j.raw_output, j.rationale, j.error]
                                  for j in out]))
    """
)


def test_without_nltk_data_the_two_checks_are_unscored_with_the_reason(tmp_path):
    """In a fresh process with NLTK's data hidden and the network refused: importing
    lm-eval does not try to download, and the punkt checks are unscored, not failed."""
    proc = subprocess.run(
        [sys.executable, "-c", HIDDEN, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Downloaded" not in proc.stdout and "tried the network" not in proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    (s1, score1, raw1, why1, _), (s2, score2, raw2, _, err2) = json.loads(line[7:])
    assert (s1, score1) == ("ok", 1.0)  # no_comma checked; number_sentences not counted
    assert f"length_constraints:number_sentences ({PUNKT_MISSING})" in why1
    r1 = parse_result(raw1)
    assert r1.strict == (True, None) and r1.unscored == {
        "length_constraints:number_sentences": PUNKT_MISSING
    }
    assert (s2, score2) == ("not_applicable", None) and PUNKT_MISSING in err2
    acc = accuracy([r1, parse_result(raw2)])
    assert (acc["n_prompts"], acc["n_unscored"], acc["inst_strict"]) == (0, 2, 1.0)
    assert acc["unscored_reasons"] == {PUNKT_MISSING: 2}


def test_extract_punkt_keeps_only_the_english_model_and_readme(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for rel in ("README", "english/sent_starters.txt", "english/ortho_context.tab",
                    "german/sent_starters.txt"):  # fmt: skip
            zf.writestr(PUNKT_IN_WHEEL + rel, rel)
        zf.writestr("llama_index/core/other.py", "x")
    written = extract_punkt(wheel, tmp_path / "nltk_data")
    base = tmp_path / "nltk_data/tokenizers/punkt_tab"
    assert sorted(p.relative_to(base).as_posix() for p in written) == [
        "README",
        "english/ortho_context.tab",
        "english/sent_starters.txt",
    ]
    empty = tmp_path / "empty.whl"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(RuntimeError, match="no English punkt_tab model"):
        extract_punkt(empty, tmp_path / "x")


def test_the_preset_stores_the_instructions_as_the_demo_does(con):
    result = import_file(con, FIXTURES / "ifeval_input.jsonl", ImportOptions(source="ifeval"))
    assert result.preset == "ifeval"  # detected from the columns
    first = json.loads((FIXTURES / "ifeval_input.jsonl").read_text().splitlines()[0])
    row = con.execute(
        "SELECT example_id, instruction, kind, meta FROM examples WHERE example_id = ?",
        [f"ifeval:{first['key']}"],
    ).fetchall()[0]
    assert row[1:3] == (first["prompt"], "instruction")
    assert json.loads(row[3]) == {
        "ifeval": {"instruction_id_list": first["instruction_id_list"], "kwargs": first["kwargs"]}
    }
    demo = json.loads((ROOT / "data/demo/demo_examples.jsonl").read_text().splitlines()[-1])
    demo = next(
        json.loads(x)
        for x in (ROOT / "data/demo/demo_examples.jsonl").read_text().splitlines()
        if json.loads(x)["source"] == "ifeval"
    )
    assert set(demo["meta"]["ifeval"]) == {"instruction_id_list", "kwargs"}


@pytest.mark.parametrize(
    "row, where",
    [
        (
            {"key": 2, "prompt": "Hi.", "instruction_id_list": ["punctuation:no_coma"], "kwargs": [{}]},
            r"line 2, field 'instruction_id_list\[0\]': instruction id 'punctuation:no_coma' is "
            r"unknown to lm-eval",
        ),
        (
            {"key": 2, "prompt": "Hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]},
            r"line 2, field 'kwargs': expected a list of 1 objects \(one per instruction id\), got 2",
        ),
        (
            {"key": 2, "prompt": "Hi.", "instruction_id_list": ["length_constraints:number_words"],
             "kwargs": [{"num_word": 3}]},
            r"line 2, field 'kwargs\[0\]': unexpected argument\(s\) \['num_word'\] for "
            r"length_constraints:number_words \(takes num_words, relation\)",
        ),
        (
            {"key": 2, "prompt": "Hi.", "instruction_id_list": [], "kwargs": []},
            r"line 2, field 'instruction_id_list': expected a non-empty list",
        ),
        (
            {"key": 2, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
            r"line 2, field 'prompt': missing required field",
        ),
    ],
)  # fmt: skip
def test_the_preset_names_the_line_and_field_of_a_bad_row(con, tmp_path, row, where):
    good = {"key": 1, "prompt": "Hello.", "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}]}  # fmt: skip
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ImportRejected, match="bad.jsonl, " + where):
        import_file(con, path, ImportOptions(preset="ifeval"))
    assert con.execute("SELECT count(*) FROM examples").fetchall()[0][0] == 0


def test_install_benchmark_dedupes_the_demo_and_is_idempotent(con, tmp_path):
    from reset_core.ingest.demo import load_demo

    load_demo(con)
    before = benchmark_status(con)[0]
    assert (before["installed"], before["in_seen"], before["total"]) == (9, 38, 541)
    first = install_benchmark(con, "ifeval")
    assert first["n_rows"] == 541
    # the demo's 47 IFEval prompts are the same content: kept, with their split
    assert (first["added"], first["already_present"], first["in_seen"]) == (494, 47, 38)
    assert first["installed"] == 503
    again = install_benchmark(con, "ifeval")
    assert (again["added"], again["already_present"], again["installed"]) == (0, 541, 503)
    assert benchmark_status(con)[0]["installed"] == 503
    n = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE split = 'test_unseen'), "
        "count(*) FILTER (WHERE json_array_length(meta, '$.ifeval.instruction_id_list') > 0) "
        "FROM examples WHERE source = 'ifeval'"
    ).fetchall()[0]
    assert n == (541, 494, 541)
    tests = benchmark_tests("ifeval")
    assert (tests.sources, tests.splits) == (["ifeval"], ["test_seen", "test_unseen"])
    assert tests.count >= 503
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'; built in: ifeval"):
        install_benchmark(con, "mmlu")


def test_benchmark_cli(db_path, capsys):
    from reset_core.cli import main

    assert main(["--db", str(db_path), "benchmark", "install", "ifeval"]) == 0
    out = capsys.readouterr().out
    assert "541 prompts; 541 added to test_unseen (source ifeval), 0 already present" in out
    assert main(["--db", str(db_path), "benchmark", "list"]) == 0
    assert "541/541 in a test split; CC BY 4.0" in capsys.readouterr().out


def test_bundled_file_is_the_credited_one():
    import hashlib

    data = BENCHMARKS["ifeval"].file.read_bytes()
    assert len(data) == 207_111 and len(data.splitlines()) == 541
    sha = "67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49"
    assert hashlib.sha256(data).hexdigest() == sha
    assert sha in (ROOT / "data/benchmarks/README.md").read_text()
    assert "CC BY 4.0" in (ROOT / "data/README.md").read_text()


def test_instruction_proxy_uses_lm_evals_checkers_for_stated_constraints():
    proxy = METRIC_JUDGES["instruction_proxy"]()
    assert proxy.judge_id == "metric:instruction_proxy:v2"

    def judge(instruction, text):
        it = JudgeItem("e", "c", "instruction", instruction, None, None, "instruction", text)
        return proxy.judge([it])[0]

    # lm-eval counts words as \w+ runs: "state-of-the-art" is four, so five words is over
    over = judge("Describe it in at most 4 words.", "state-of-the-art design")
    assert "failed: at most 4 words" in over.rationale
    assert judge("Describe it in at most 4 words.", "a fine design").score == 1.0
    j = judge("Reply in all lowercase letters and without commas.", "Yes, sure thing")
    assert "failed: no commas, all lowercase" in j.rationale
    assert judge("Reply in all lowercase letters and without commas.", LOWER).score == 1.0
    assert "failed: valid JSON" in judge("Return JSON.", "{'a': 1}").rationale
    assert judge("Return JSON.", '```json\n{"a": 1}\n```').score == 1.0
    sentences = judge("Explain in at most two sentences.", "One. Two. Three.")
    assert "failed: at most 2 sentences" in sentences.rationale
    # our own checks remain where IFEval has no equivalent
    assert "starts with yes or no" in judge("Is it? Answer yes or no.", "Maybe.").rationale


def test_benchmark_answers_judged_by_a_worker_give_the_direct_accuracy(con, db_path):
    """The whole path: the preset's meta, a judging job in its own process (which must
    find NLTK's data itself), verdicts stored with raw_output, accuracy read back."""
    import time

    import pyarrow as pa

    from reset_core.jobs import launch
    from reset_core.judging.launch import JudgePlan, create_judge_job, sync_judge_job
    from reset_core.store import insert_arrow

    install_benchmark(con, "ifeval")
    ex = con.execute(
        "SELECT example_id, instruction, meta FROM examples ORDER BY example_id"
    ).fetchall()
    # the prompt itself as the answer: deterministic, and it follows some instructions
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": [f"c-{e[0]}" for e in ex],
                "example_id": [e[0] for e in ex],
                "model_id": ["m"] * len(ex),
                "setting_id": ["s"] * len(ex),
                "sample_index": [0] * len(ex),
                "seed": [0] * len(ex),
                "text": [e[1] for e in ex],
                "engine": ["test"] * len(ex),
            }
        ),
    )
    plan = JudgePlan(splits=["test_unseen"])
    job = create_judge_job(con, db_path, [{"type": "metric", "name": "ifeval"}], plan=plan)
    launch(con, job)
    deadline = time.time() + 300
    while (prog := sync_judge_job(con, job))["status"] == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert prog["status"] == "done", prog
    stored = con.execute(
        "SELECT status, raw_output FROM judgments WHERE judge_id = 'metric:ifeval:v1'"
    ).fetchall()
    assert len(stored) == 541 and {s for s, _ in stored} == {"ok"}
    direct = []
    for _, instruction, meta in ex:
        spec = json.loads(meta)["ifeval"]
        direct.append(check(spec["instruction_id_list"], spec["kwargs"], instruction, instruction))
    got = accuracy(parse_result(raw) for _, raw in stored)
    assert got == accuracy(direct)
    assert (got["n_prompts"], got["n_instructions"], got["n_unscored"]) == (541, 834, 0)


def test_verdicts_repeat_even_where_a_checker_draws_at_random():
    """IFEval's prompt 1122 asks for the 'letter' '#', which lm-eval's letter checker
    replaces with a random letter; langdetect samples too. Both are seeded per check,
    and the caller's random state is left as it was."""
    import random

    row = next(
        json.loads(x)
        for x in BENCHMARKS["ifeval"].file.read_text().splitlines()
        if json.loads(x)["key"] == 1122
    )
    answer = "#fun #party #night #vibes\nwhat a great evening out with friends in the city"
    verdicts = set()
    for seed in range(8):
        random.seed(seed)
        before = random.getstate()
        r = check(row["instruction_id_list"], row["kwargs"], row["prompt"], answer)
        assert random.getstate() == before
        verdicts.add((r.strict, r.loose))
    assert len(verdicts) == 1
