"""Secrets (#13, item 5): which key variables and hosts the app may use, and a planted key
that must never be written anywhere.

- The allow-list: defaults, a configured list, patterns, settings names never allowed,
  base URLs restricted under login or by a configured list.
- The Judge and Sample pages offer a choice among the allowed names, and refuse a host
  the deployment does not allow; a key kept only in the app's secrets reaches the worker
  that needs it, and no other secret does.
- Server side: a disallowed name or host from the CLI, a job folder or the database
  fails with an error naming the field, and not one request is sent.
- The planted key: ``OPENAI_API_KEY=sk-planted-…`` runs through sampling, LLM judging
  (with a 401 whose body quotes the headers and a bad host), selection, curation,
  export in every format, an evaluation of the tiny model scored by the LLM judge, and
  both reports. (Training is left out: about a minute of worker start-up on a loaded
  2-core machine, and its worker never holds the key, see the worker environment test.)
  Then the key, URL-encoded and base64 (at every alignment), is searched for in every
  file under the data root (the database's bytes and every table's text, the judge
  cache, job folders with logs, shards, manifests and progress files, exports,
  reports, model folders), in the log, and in every error message stored or raised.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from devtools.openai_standin import OpenAICompatServer
from reset_core import deployment, jobs
from reset_core.deployment import Deployment, SecretNotAllowed
from tests.reliability.record import record

ROOT = Path(__file__).resolve().parents[2]
SEED = 13
STANDIN = "http://127.0.0.1:1/v1"  # only a URL to check; nothing listens there


def planted_key(tag: str = "") -> str:
    """A key no file or message could contain by chance (seeded: the same every run)."""
    return f"sk-planted-{tag}{random.Random(SEED).getrandbits(96):024x}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No key, setting or app secret from the machine running the tests leaks in.

    The data root stays: conftest points it at pytest's own temporary folder."""
    for name in [*deployment.ENV.values(), "OPENAI_API_KEY", "OPENAI_BASE_URL"]:
        if name != deployment.ENV["data_root"]:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    deployment.use_app_secrets(None)
    yield
    deployment.use_app_secrets(None)


# --------------------------------------------------------------------------- allow-list


def test_default_allow_list_is_openai_and_reset_studio_names_never_settings():
    d = Deployment.load({})
    assert d.allowed_key_envs == ["OPENAI_API_KEY", "RESET_STUDIO_*"]
    for name in ("OPENAI_API_KEY", "RESET_STUDIO_JUDGE_KEY", "RESET_STUDIO_X"):
        assert d.key_env_allowed(name), name
    for name in ("AWS_SECRET_ACCESS_KEY", "HOME", "PATH", "openai_api_key", "", "GITHUB_TOKEN"):
        assert not d.key_env_allowed(name), name
    # The settings are never keys, whatever the list says: not even with "*".
    everything = Deployment.load({"RESET_STUDIO_ALLOWED_KEY_ENVS": "*"})
    assert everything.key_env_allowed("AWS_SECRET_ACCESS_KEY")
    for name in deployment.SETTINGS_NAMES:
        assert not d.key_env_allowed(name) and not everything.key_env_allowed(name), name
        with pytest.raises(SecretNotAllowed, match="api_key_env: the environment variable"):
            everything.check_key_env(name)
    record("secrets", "allow-list: defaults and settings names", "as specified", cases=10)


def test_configured_list_and_patterns_from_env_or_secrets_env_wins():
    env = {"RESET_STUDIO_ALLOWED_KEY_ENVS": "TEAM_JUDGE_KEY, LAB_*_TOKEN"}
    d = Deployment.load(env)
    assert d.allowed_key_envs == ["TEAM_JUDGE_KEY", "LAB_*_TOKEN"]
    assert d.key_env_allowed("TEAM_JUDGE_KEY") and d.key_env_allowed("LAB_A_TOKEN")
    assert not d.key_env_allowed("OPENAI_API_KEY")  # the list replaces the defaults
    assert not d.key_env_allowed("LAB_TOKEN_X")
    with pytest.raises(SecretNotAllowed) as e:
        d.check_key_env("OPENAI_API_KEY", field="api_key_env")
    assert "api_key_env" in str(e.value) and "TEAM_JUDGE_KEY, LAB_*_TOKEN" in str(e.value)
    # Literal names always offered; pattern names once such a variable is set (in the
    # environment or the app's secrets), never a value.
    names = d.allowed_key_names({"LAB_B_TOKEN": "x", "HOME": "/root", "LAB_TOKEN": "x"})
    assert names == ["LAB_B_TOKEN", "TEAM_JUDGE_KEY"]
    secrets = {"reset_studio": {"allowed_key_envs": ["FROM_SECRETS"]}}
    assert Deployment.load({}, secrets).allowed_key_envs == ["FROM_SECRETS"]
    assert Deployment.load(env, secrets).allowed_key_envs == ["TEAM_JUDGE_KEY", "LAB_*_TOKEN"]
    deployment.use_app_secrets({**secrets, "FROM_SECRETS": "sk-x", "NOT_A_KEY": "y"})
    assert Deployment.current({}).allowed_key_names() == ["FROM_SECRETS"]
    record("secrets", "allow-list: configured list and patterns", "as specified", cases=9)


def test_base_urls_any_on_a_workstation_narrow_under_login_or_a_list():
    free = Deployment.load({})
    for url in (None, "http://127.0.0.1:8000/v1", "http://10.0.0.5/v1", "https://x.example/v1"):
        assert free.check_base_url(url, env={}) == url
    shared = Deployment.load({"RESET_STUDIO_LOGIN": "password"})
    env = {"OPENAI_BASE_URL": "http://gateway.lab:8000/v1/"}
    assert shared.check_base_url(None, env=env) is None  # the OpenAI API
    assert shared.check_base_url("https://API.openai.com:443/v1/", env=env)
    assert shared.check_base_url("http://gateway.lab:8000/v1", env=env)
    for url in (
        "http://169.254.169.254/latest",
        "http://127.0.0.1:8000/v1",
        "http://gateway.lab/v1",
    ):
        with pytest.raises(SecretNotAllowed, match=r"^base_url: .* is not an endpoint"):
            shared.check_base_url(url, env=env)
    listed = Deployment.load(
        {"RESET_STUDIO_ALLOWED_BASE_URLS": "https://*.lab.example/v1,http://127.0.0.1:*"}
    )
    assert listed.check_base_url("https://judge.lab.example/v1", env={})
    assert listed.check_base_url("http://127.0.0.1:8123/v1", env={})
    # A wildcard never reaches across a "/": the host is what the key is sent to.
    for url in (
        "https://evil.test/x.lab.example/v1",
        "https://lab.example.evil.test/v1",
        "http://127.0.0.2:80/v1",
    ):
        with pytest.raises(SecretNotAllowed, match="judge_url"):
            listed.check_base_url(url, field="judge_url", env={})
    with pytest.raises(SecretNotAllowed, match="base_url: 'http://h:port/v1' is not a URL"):
        listed.check_base_url("http://h:port/v1", env={})
    record("secrets", "base URLs: workstation, login, configured list", "as specified", cases=15)


def test_a_key_variable_is_never_read_as_a_base_url():
    from reset_core.judging.engine import endpoint_url

    env = {"OPENAI_API_KEY": planted_key(), "RESET_STUDIO_JUDGE_BASE_URL": "http://h/v1"}
    assert endpoint_url(None, "RESET_STUDIO_JUDGE_BASE_URL", env) == "http://h/v1"
    for name in ("OPENAI_API_KEY", "RESET_STUDIO_JUDGE_KEY", "RESET_STUDIO_ALLOWED_BASE_URLS"):
        with pytest.raises(
            SecretNotAllowed, match=f"base_url_env: the environment variable '{name}'"
        ) as e:
            endpoint_url(None, name, env)
        assert planted_key() not in str(e.value)


def test_worker_env_hands_over_exactly_the_keys_the_job_names():
    key, other = planted_key("a"), planted_key("b")
    deployment.use_app_secrets(
        {"RESET_STUDIO_SECRET_ONLY_KEY": key, "db_password": "hunter2-hunter2", "reset_studio": {}}
    )
    # Streamlit copies root-level secrets into the app's environment: as here.
    env = {
        "PATH": "/usr/bin",
        "OPENAI_API_KEY": other,
        "RESET_STUDIO_OTHER_KEY": other,
        "db_password": "hunter2-hunter2",
        "RESET_STUDIO_PASSWORD": "pw-pw-pw-pw",
        "RESET_STUDIO_DB": "/data/x.duckdb",
    }
    d = Deployment.current(env)
    out = d.worker_env({"RESET_STUDIO_SECRET_ONLY_KEY", "AWS_SECRET_ACCESS_KEY"}, env)
    assert out["RESET_STUDIO_SECRET_ONLY_KEY"] == key
    for gone in (
        "OPENAI_API_KEY",
        "RESET_STUDIO_OTHER_KEY",
        "db_password",
        "RESET_STUDIO_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert gone not in out, gone
    assert out["PATH"] == "/usr/bin" and out["RESET_STUDIO_DB"] == "/data/x.duckdb"
    assert out["RESET_STUDIO_ALLOWED_KEY_ENVS"] == "OPENAI_API_KEY,RESET_STUDIO_*"
    assert deployment.key_envs_in(
        {"judges": [{"type": "llm", "config": {"api_key_env": "K"}}]}
    ) == {"K"}
    record(
        "secrets", "worker environment", "only the named key", keys_handed=1, secrets_kept_back=5
    )


def test_redact_removes_every_form_of_a_key():
    key = planted_key()
    b64 = base64.b64encode(key.encode()).decode()
    text = f"Bearer {key}; q={urllib.parse.quote(key)}; basic {b64}; short abc"
    out = deployment.redact(text, [key, "abc"])
    assert _hits(out, key) == 0 and out.endswith("short abc")


# --------------------------------------------------------------------------- server side


@pytest.fixture
def keyed_server():
    with OpenAICompatServer(require_key=planted_key()) as srv:
        yield srv


@pytest.fixture
def seeded(con, db_path):
    """Two examples with one candidate each: enough to judge."""
    from tests.test_judging import _seed_db

    _seed_db(con)
    return con


def _llm_spec(con, **cfg):
    from reset_core.judging.launch import llm_spec
    from reset_core.judging.llm_judge import LLMJudgeConfig

    return llm_spec(con, LLMJudgeConfig(model="local-test", max_retries=0, **cfg))


def test_disallowed_key_or_host_fails_at_launch_and_in_the_worker_sending_nothing(
    seeded, db_path, keyed_server, monkeypatch, capsys
):
    from reset_core.cli import main
    from reset_core.judging.launch import create_judge_job, sync_judge_job

    con, url = seeded, keyed_server.base_url
    monkeypatch.setenv("OPENAI_API_KEY", planted_key())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", planted_key("aws"))
    errors = []
    # Launch, from the library (the page's call) and from the CLI.
    bad = _llm_spec(con, base_url=url, api_key_env="AWS_SECRET_ACCESS_KEY")
    with pytest.raises(
        SecretNotAllowed, match="api_key_env: the environment variable 'AWS_SECRET_ACCESS_KEY'"
    ) as e:
        create_judge_job(con, db_path, [bad])
    errors.append(str(e.value))
    cli = ["--db", str(db_path), "judge", "--llm", "--model", "local-test", "--base-url", url]
    con.close()
    assert main([*cli, "--api-key-env", "AWS_SECRET_ACCESS_KEY"]) == 2
    assert (
        main(
            [
                *cli,
                "--api-key-env",
                "OPENAI_API_KEY",
                "--base-url-env",
                "AWS_SECRET_ACCESS_KEY",
                "--base-url",
                "",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "api_key_env: the environment variable 'AWS_SECRET_ACCESS_KEY'" in err
    assert "base_url_env: the environment variable 'AWS_SECRET_ACCESS_KEY'" in err
    errors.append(err)
    from reset_core.store import connect

    con = connect(db_path)
    # Under login only the OpenAI API (and $OPENAI_BASE_URL) may be sent to.
    monkeypatch.setenv("RESET_STUDIO_LOGIN", "password")
    with pytest.raises(
        SecretNotAllowed, match=r"^base_url: http://127\.0\.0\.1:\d+/v1 is not an endpoint"
    ) as e:
        create_judge_job(con, db_path, [_llm_spec(con, base_url=url)])
    errors.append(str(e.value))
    monkeypatch.delenv("RESET_STUDIO_LOGIN")
    # A job whose stored config was changed after launch: the worker refuses it.
    job_id = create_judge_job(con, db_path, [_llm_spec(con, base_url=url)])
    job_json = jobs.work_dir(con, job_id) / "job.json"
    spec = json.loads(job_json.read_text())
    spec["config"]["judges"][0]["config"]["api_key_env"] = "AWS_SECRET_ACCESS_KEY"
    job_json.write_text(json.dumps(spec))
    assert jobs.run_here(con, job_id) == 1
    progress = sync_judge_job(con, job_id)
    assert progress["status"] == "failed"
    assert progress["error"].startswith(
        "SecretNotAllowed: api_key_env: the environment variable 'AWS_SECRET_ACCESS_KEY'"
    )
    errors += [progress["error"], progress.get("traceback", "")]
    assert keyed_server.n_requests == 0 and keyed_server.unauthorized == 0
    hits = sum(_hits(t, planted_key()) + _hits(t, planted_key("aws")) for t in errors)
    assert hits == 0
    record(
        "secrets",
        "judge: disallowed key variable or host (launch, CLI, edited job)",
        "refused naming the field, 0 requests sent",
        hits=hits,
        requests_sent=keyed_server.n_requests,
    )


def test_sampling_refuses_a_disallowed_key_or_host_before_any_request(
    con, keyed_server, monkeypatch
):
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.launch import SamplingRejected, check_model
    from reset_core.sampling.openai_backend import OpenAIGenerator

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", planted_key("aws"))
    spec = ModelSpec(
        engine="openai",
        model="local-test",
        base_url=keyed_server.base_url,
        api_key_env="AWS_SECRET_ACCESS_KEY",
    )
    with pytest.raises(
        SamplingRejected, match="^api_key_env: the environment variable 'AWS_SECRET_ACCESS_KEY'"
    ):
        check_model(spec)
    with pytest.raises(SecretNotAllowed, match="^api_key_env"):
        OpenAIGenerator(spec)  # the worker's side
    monkeypatch.setenv("RESET_STUDIO_ALLOWED_BASE_URLS", "https://api.openai.com/v1")
    spec = spec.model_copy(update={"api_key_env": "OPENAI_API_KEY"})
    with pytest.raises(
        SamplingRejected, match=r"^base_url: http://127\.0\.0\.1:\d+/v1 is not an endpoint"
    ):
        check_model(spec)
    with pytest.raises(SecretNotAllowed, match="^base_url"):
        OpenAIGenerator(spec)
    assert keyed_server.n_requests == 0 and keyed_server.unauthorized == 0
    record(
        "secrets",
        "sampling: disallowed key variable or host",
        "refused naming the field, 0 requests sent",
        requests_sent=0,
    )


# --------------------------------------------------------------------------- pages


@pytest.fixture
def judge_page(seeded, db_path):
    seeded.close()  # the page owns the database now (one writer)

    def make(**secrets):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["db_path"] = str(db_path)
        at.secrets.update(secrets)
        at.run()
        at.switch_page("pages/judge.py").run()
        assert not at.exception, at.exception
        return at

    return make


def test_judge_page_offers_only_allowed_names_and_refuses_a_host(judge_page, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", planted_key())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", planted_key("aws"))
    monkeypatch.setenv("RESET_STUDIO_TEAM_KEY", planted_key("team"))
    at = judge_page(RESET_STUDIO_SECRET_ONLY_KEY=planted_key("s"), other_secret="x" * 12)
    at.radio(key="llm_mode").set_value("OpenAI-compatible endpoint").run()
    box = at.selectbox(key="llm_key_env")
    assert box.options == [
        "OPENAI_API_KEY",
        "RESET_STUDIO_SECRET_ONLY_KEY",
        "RESET_STUDIO_TEAM_KEY",
    ]
    assert box.value == "OPENAI_API_KEY" and not at.error
    assert not [t for t in at.text_input if t.label == "API key variable"]  # no free text
    monkeypatch.setenv("RESET_STUDIO_ALLOWED_BASE_URLS", "https://api.openai.com/v1")
    at.text_input(key="llm_base_url").set_value("http://169.254.169.254/latest").run()
    assert [e.value for e in at.error] == [
        "base_url: http://169.254.169.254/latest is not an endpoint this deployment allows "
        "(allowed: https://api.openai.com/v1; set RESET_STUDIO_ALLOWED_BASE_URLS to change)"
    ]
    # The estimate (and so the launch) holds the offline judges only: no LLM judge
    # with a refused host.
    planned = at.dataframe[0].value["judge"]
    assert len(planned) and not planned.str.startswith("llm:").any()
    text = _page_text(at)
    hits = sum(_hits(text, planted_key(t)) for t in ("", "aws", "team", "s"))
    assert hits == 0
    record(
        "secrets",
        "Judge page: key choice and host check",
        "choice of 3 allowed names; host refused",
        hits=hits,
    )


def test_sample_page_offers_only_allowed_names_and_refuses_a_host(db_path, con, monkeypatch):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, ROOT / "tests" / "fixtures" / "alpaca.json", ImportOptions(preset="alpaca"))
    con.close()
    monkeypatch.setenv("OPENAI_API_KEY", planted_key())
    monkeypatch.setenv("GITHUB_TOKEN", planted_key("gh"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.secrets["RESET_STUDIO_SECRET_ONLY_KEY"] = planted_key("s")
    at.run()
    at.switch_page("pages/sample.py").run()
    at.radio(key="sample_model_source").set_value("OpenAI-compatible endpoint").run()
    at.text_input(key="sample_served_model").set_value("local-test").run()
    box = at.selectbox(key="sample_key_env")
    assert box.options == ["OPENAI_API_KEY", "RESET_STUDIO_SECRET_ONLY_KEY"]
    assert not at.error, [e.value for e in at.error]
    assert not at.button(key="sample_start").disabled
    monkeypatch.setenv("RESET_STUDIO_ALLOWED_BASE_URLS", "https://api.openai.com/v1")
    at.text_input(key="sample_base_url").set_value("http://10.1.2.3:8000/v1").run()
    assert [e.value for e in at.error] == [
        "base_url: http://10.1.2.3:8000/v1 is not an endpoint this deployment allows "
        "(allowed: https://api.openai.com/v1; set RESET_STUDIO_ALLOWED_BASE_URLS to change)"
    ]
    assert at.button(key="sample_start").disabled
    text = _page_text(at)
    hits = sum(_hits(text, planted_key(t)) for t in ("", "gh", "s"))
    assert hits == 0
    record(
        "secrets",
        "Sample page: key choice and host check",
        "choice of 2 allowed names; host refused",
        hits=hits,
    )


def test_a_key_only_in_the_apps_secrets_reaches_the_judge_worker_and_nothing_else(
    judge_page, db_path, monkeypatch, log_capture
):
    """The Judge page launches an LLM judge whose key lives only in ``st.secrets``: the
    worker (a separate process) gets that key, the endpoint accepts it, and the key is
    then found nowhere: not in the data folder, the page, the log or the job's errors."""
    key = planted_key("s")
    monkeypatch.setenv("OPENAI_API_KEY", planted_key("env"))  # in the app, not for this job
    with OpenAICompatServer(require_key=key) as srv:
        at = judge_page(RESET_STUDIO_SECRET_ONLY_KEY=key)
        at.checkbox(key="use_offline").uncheck().run()
        at.radio(key="llm_mode").set_value("OpenAI-compatible endpoint").run()
        at.text_input(key="llm_model").set_value("local-test").run()
        at.text_input(key="llm_base_url").set_value(srv.base_url).run()
        at.selectbox(key="llm_key_env").set_value("RESET_STUDIO_SECRET_ONLY_KEY").run()
        assert not at.error, [e.value for e in at.error]
        at.button(key="launch").click().run()
        assert not at.exception, at.exception
        job_id = at.session_state["judge_job"]
        job_dir = db_path.parent / "jobs" / job_id
        env = jobs.worker_env(job_dir)
        assert env["RESET_STUDIO_SECRET_ONLY_KEY"] == key and "OPENAI_API_KEY" not in env
        deadline = time.monotonic() + 90
        while jobs.read_json(job_dir / "progress.json").get("status") not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        at.run()  # the page syncs the finished job
        assert jobs.read_json(job_dir / "progress.json")["status"] == "done"
        assert (
            srv.unauthorized == 0 and srv.n_requests >= 12
        )  # every verdict was sent, with the key
    hits, places, where = _search(db_path.parent, key, [_page_text(at)], "\n".join(log_capture))
    hits_env, _, _ = _search(db_path.parent, planted_key("env"), [_page_text(at)], "")
    assert where == [] and hits == 0 and hits_env == 0
    record(
        "secrets",
        "Judge page: key only in st.secrets, judged by a worker process",
        "worker authorised; 0 hits",
        hits=hits,
        places_searched=places,
        requests=srv.n_requests,
    )


# --------------------------------------------------------------------------- the planted key


def _forms(key: str) -> list[str]:
    """The key as text, URL-encoded, and as base64 inside any longer base64 text
    (three alignments, the bytes before and the partial last group left out)."""
    raw = key.encode()
    forms = {key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key)}
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw).decode()
        forms.add(enc[4 if pad else 0 : -4])
    return sorted(forms)


def _hits(text: str | bytes | None, key: str) -> int:
    if not text:
        return 0
    if isinstance(text, bytes):
        return sum(text.count(f.encode()) for f in _forms(key))
    return sum(text.count(f) for f in _forms(key))


def _page_text(at) -> str:
    """Everything an AppTest run shows: each element's protobuf (values, labels, help,
    options, dataframes' bytes) as text."""
    parts, stack = [], [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        stack += list(getattr(node, "children", {}).values())
    return "\n".join(parts)


def _search(root: Path, key: str, messages: list[str], log_text: str) -> tuple[int, int, list[str]]:
    """Hits of the key in every file under ``root`` (bytes, and the text of every
    Parquet, DuckDB and SQLite table), in ``messages`` and the log: (hits, places, where)."""
    import duckdb

    hits, places, where = 0, 0, []

    def note(place: str, n: int) -> None:
        nonlocal hits, places
        places += 1
        if n:
            hits += n
            where.append(f"{place}: {n}")

    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        note(str(path), _hits(data, key))
        if path.suffix == ".parquet":
            note(
                f"{path} (rows)",
                _hits(json.dumps(pq.read_table(path).to_pylist(), default=str), key),
            )
        elif path.suffix == ".duckdb":
            # A copy (with its WAL): the page may still hold the file open.
            copy = Path(tempfile.mkdtemp()) / path.name
            for src in (path, path.with_name(path.name + ".wal")):
                if src.exists():
                    shutil.copy(src, copy.with_name(src.name))
            c = duckdb.connect(str(copy))
            for (table,) in c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall():
                rows = c.execute(f'SELECT * FROM "{table}"').fetchall()
                note(f"{path} table {table}", _hits(repr(rows), key))
            c.close()
        elif path.suffix == ".sqlite":
            c = sqlite3.connect(path)
            for (table,) in c.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                note(
                    f"{path} table {table}",
                    _hits(repr(c.execute(f'SELECT * FROM "{table}"').fetchall()), key),
                )
            c.close()
    for i, m in enumerate(messages):
        note(f"message {i}", _hits(m, key))
    note("log", _hits(log_text, key))
    return hits, places, where


def _examples_file(path: Path) -> Path:
    """Seen examples of both kinds, test examples to evaluate on, and two that fail on
    purpose: one whose prompt makes the endpoint answer 401 with the request's headers
    quoted (sampling), one whose reference does the same to the judge's task request."""
    rows = [
        {"instruction": "Name three primary colours.", "output": "Red, yellow and blue."},
        {"instruction": "Give a synonym of quick.", "output": "Fast."},
        {"instruction": "Say hello [[fault:echo]] politely.", "output": "Hello."},
        {"instruction": "Write one word about rain.", "output": "Wet. [[fault:echo]]"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _context_file(path: Path, n: int, tag: str) -> Path:
    rows = [
        {
            "question": f"Where does the {tag} river {i} flow?",
            "context": f"The {tag} river {i} flows north into the lake near town {i}.",
            "answers": {"text": [f"into the lake near town {i}"]},
        }
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def log_capture():
    """Every log record of this process at DEBUG (the app's log, as a deployment keeps it)."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler, root = Keep(logging.DEBUG), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_planted_key_is_found_nowhere_after_every_stage(
    tmp_path, tiny_model_dir, monkeypatch, capfd, log_capture
):
    """The whole loop on the planted key: 0 hits in every file, table, log and message."""
    from reset_core.cli import main
    from reset_core.store import connect
    from reset_core.training.launch import ensure_model

    key = planted_key()
    data = tmp_path / "data"
    data.mkdir()
    db = data / "studio.duckdb"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("RESET_STUDIO_DB", str(db))
    monkeypatch.chdir(data)
    messages: list[str] = []
    cli = ["--db", str(db)]
    t0 = time.monotonic()
    with OpenAICompatServer(require_key=key) as srv:
        url = srv.base_url
        assert (
            main([*cli, "import", str(_examples_file(tmp_path / "i.jsonl")), "--preset", "alpaca"])
            == 0
        )
        assert (
            main(
                [
                    *cli,
                    "import",
                    str(_context_file(tmp_path / "c.jsonl", 2, "seen")),
                    "--preset",
                    "qa",
                ]
            )
            == 0
        )
        test_file = _context_file(tmp_path / "t.jsonl", 2, "test")
        assert main([*cli, "import", str(test_file), "--preset", "qa", "--split", "test_seen"]) == 0
        grid = tmp_path / "grid.json"
        grid.write_text(json.dumps([{"temperature": 0.7, "max_tokens": 16, "n": 2, "seed": 1}]))
        # Sampling through the endpoint (a worker process, the key in its environment):
        # one request is answered 401 with the headers quoted; the others are kept.
        sample = [*cli, "sample", "--engine", "openai", "--model", "local-test", "--base-url", url]
        assert main([*sample, "--grid", str(grid), "--count", "10", "--concurrency", "2"]) == 1
        # The same endpoint with a wrong key: 401, the wrong key's headers quoted.
        monkeypatch.setenv("RESET_STUDIO_WRONG_KEY", "sk-wrong-" + "0" * 24)
        assert main([*sample, "--api-key-env", "RESET_STUDIO_WRONG_KEY", "--grid", str(grid)]) == 2
        # An LLM judge on the endpoint (one task request answered 401 with the headers),
        # and one on a host that does not answer.
        judge = [
            *cli,
            "judge",
            "--llm",
            "--model",
            "local-test",
            "--max-retries",
            "0",
            "--backoff-s",
            "0",
        ]
        assert main([*judge, "--base-url", url, "--aspects", "all"]) == 0
        assert main([*judge, "--base-url", "http://127.0.0.1:9/v1", "--timeout-s", "5"]) == 0
        assert srv.unauthorized == 1  # the wrong key, once (GET /models)
        con = connect(db)
        judge_id = con.execute(
            "SELECT judge_id FROM judges WHERE kind = 'llm' AND endpoint = ?", [url]
        ).fetchone()[0]
        tiny_id = ensure_model(con, str(tiny_model_dir), name="tiny")
        con.close()
        # The stand-in's verdicts are placeholders: a panel must include them by name.
        panel = ["--judges", judge_id, "--include-placeholders"]
        assert main([*cli, "select", *panel]) == 0
        assert main([*cli, "curate", "--name", "planted"]) == 0
        con = connect(db)
        set_id = con.execute(
            "SELECT set_id FROM curated_sets ORDER BY created_at DESC LIMIT 1"
        ).fetchone()[0]
        con.close()
        for fmt, form in (
            ("jsonl", "messages"),
            ("parquet", "prompt_completion"),
            ("hf", "messages"),
        ):
            out = data / "exports" / f"set.{fmt}"
            assert (
                main([*cli, "export", set_id, "--format", fmt, "--form", form, "--out", str(out)])
                == 0
            )
        # Evaluation: the tiny model answers the test examples, the LLM judge (the key
        # again, from an evaluation's judging job) scores them; then both reports.
        assert main([*cli, "panel", "save", "llm-only", *panel]) == 0
        ev = [
            *cli,
            "evaluate",
            "--checkpoints",
            tiny_id,
            "--splits",
            "test_seen",
            "--panel",
            "llm-only",
        ]
        before = srv.n_requests
        assert main([*ev, "--count", "2", "--max-tokens", "8", "--name", "planted"]) == 0
        assert srv.n_requests > before  # the evaluation's judging sent the key too
        con = connect(db)
        eval_id = con.execute("SELECT evaluation_id FROM evaluations").fetchone()[0]
        con.close()
        for fmt in ("html", "md"):
            out = data / "reports" / f"r.{fmt}"
            assert (
                main(
                    [*cli, "report", eval_id, "--format", fmt, "--out", str(out), "--n-boot", "50"]
                )
                == 0
            )
        requests = srv.n_requests
    stages_s = time.monotonic() - t0
    # Every message the stages stored or printed: job errors, judgment errors and raw
    # answers are in the database (searched below); what the CLI printed is here.
    out = capfd.readouterr()
    messages += [out.out, out.err]
    con = connect(db)
    echoed = "%Authorization: Bearer [redacted]%"
    stored = con.execute("SELECT count(*) FROM judgments WHERE error ILIKE ?", [echoed]).fetchone()
    failed_jobs = con.execute("SELECT count(*) FROM jobs WHERE error ILIKE ?", [echoed]).fetchone()
    bad_host = con.execute(
        "SELECT count(*) FROM judgments WHERE status = 'connection_error'"
    ).fetchone()
    con.execute("CHECKPOINT")
    con.close()
    # The failures happened, and the endpoint's echo of the headers was kept as data,
    # the key replaced: the judge's 401 (the reference of one example), the sampling
    # job's failed request, the bad host's connection errors.
    assert stored[0] >= 1 and failed_jobs[0] == 1 and bad_host[0] >= 1, (stored, failed_jobs)
    hits, places, where = _search(tmp_path, key, messages, "\n".join(log_capture))
    assert where == [] and hits == 0
    assert requests > 10 and places > 50
    record(
        "secrets",
        "planted key through sample, judge (401 echo, bad host), select, curate, "
        "export ×3, evaluate with the LLM judge, report ×2",
        "0 hits",
        hits=hits,
        places_searched=places,
        requests=requests,
        stages_s=round(stages_s, 1),
    )
