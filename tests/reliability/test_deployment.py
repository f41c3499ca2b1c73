"""A shared deployment, safe by default: login, paths confined to the data root, uploads.

With login on, every page URL shows only the login form until the user is in, and the
reviewer is the login. Every path a user can type (database, import file, export and
training output folders, model folders) is refused outside the data root, however it
gets there (``../``, an absolute path, a symlink), and nothing is read or written then.
Uploads land once in the session's own folder. One test drives real Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from reliability.record import record
from reset_core import paths
from reset_core.deployment import hash_password

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
#: The pages the router serves, read from app.py so a new page is covered too.
PAGE_FILES = re.findall(r'st\.Page\("(pages/\w+\.py)"', (ROOT / "app.py").read_text())
OUTSIDE_ERROR = "is outside the data root"


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """The default deployment: the data root is the database's folder ($RESET_STUDIO_DB)."""
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("RESET_STUDIO_DB", str(root / "app.duckdb"))
    monkeypatch.delenv("RESET_STUDIO_DATA_ROOT", raising=False)
    for name in ("RESET_STUDIO_LOGIN", "RESET_STUDIO_USERS"):
        monkeypatch.delenv(name, raising=False)
    # Import the app's ui module outside any run, as a fresh process would meet it: its
    # one-time reroute out of legacy page mode then never fires inside a test's first
    # run, which would give that run's widgets other ids than the next run's.
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)
    import ui  # noqa: F401

    return root


@pytest.fixture
def outside(tmp_path, root) -> Path:
    """A folder beside the data root holding a valid data file, and a symlink into it."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "x.jsonl").write_text(json.dumps({"instruction": "Say hi.", "output": "Hi."}) + "\n")
    (root / "escape").symlink_to(out, target_is_directory=True)
    return out


@pytest.fixture
def steady_router(monkeypatch):
    """Run app.py on every AppTest run (see :func:`_route_first`)."""
    _route_first(monkeypatch)


def _route_first(monkeypatch) -> None:
    """Run app.py on every AppTest run, as a server does once its first run routed.

    AppTest otherwise starts each run in Streamlit's legacy page mode (a fresh server's
    first visit), where a run after the first one runs the page alone, sidebar and all
    of the router skipped: that mode is what ``test_password_login_gates_every_page_url``
    checks; the sidebar's fields need the router.
    """
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def routed_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", routed_init)


def _app(secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if secrets:
        at.secrets = secrets
    return at


def _password_secrets(alice_hash: str) -> dict:
    return {"reset_studio": {"login": "password", "users": {"alice": alice_hash}}}


def _assert_only_login_form(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    assert [b.label for b in at.button] == ["Log in"]
    assert [t.value for t in at.title] == ["RESET Studio"]
    assert len(at.sidebar.children) == 0  # no database path, no reviewer, no navigation
    for kind in ("header", "subheader", "metric", "dataframe", "selectbox", "tabs"):
        assert not getattr(at, kind), f"{kind} shown before login"


def _log_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


# ----------------------------------------------------------------------------- login


def test_password_login_gates_every_page_url(root, alice_hash, monkeypatch):
    at = _app(_password_secrets(alice_hash)).run()
    _assert_only_login_form(at)
    # AppTest starts each run in Streamlit's legacy page mode, as a fresh server does on a
    # first visit straight to /review: the page itself is run, and must hand back to the
    # router's login.
    for page in PAGE_FILES:
        at.switch_page(page).run()
        _assert_only_login_form(at)
    # And with the router run first (a server's steady state), every page URL again.
    _route_first(monkeypatch)
    at = _app(_password_secrets(alice_hash)).run()
    for page in PAGE_FILES:
        at.switch_page(page).run()
        _assert_only_login_form(at)
    assert not (root / "app.duckdb").exists(), "the database was opened before login"
    record(
        "deployment",
        "password login, anonymous visit to every page",
        "only the login form; database not opened",
        pages=len(PAGE_FILES),
    )


def test_password_login_refuses_wrong_binds_reviewer_and_logs_out(root, alice_hash, steady_router):
    at = _app(_password_secrets(alice_hash)).run()
    for name, password in (("alice", "wrong password!"), ("mallory", PASSWORD), ("", "")):
        _log_in(at, name, password)
        assert _errors(at) == ["Wrong user name or password."]
        assert [w.label for w in at.text_input] == ["User name", "Password"]
    _log_in(at, " alice ", PASSWORD)
    assert not at.exception and not _errors(at)
    assert "Logged in as **alice**" in [c.value for c in at.sidebar.caption]
    reviewer = next(w for w in at.sidebar.text_input if w.label == "Reviewer")
    assert reviewer.value == "alice" and reviewer.disabled
    # Whatever the session state says, the reviewer is the login.
    at.session_state["reviewer"] = "mallory"
    at.run()
    assert next(w for w in at.sidebar.text_input if w.label == "Reviewer").value == "alice"
    # The pages now run, as alice.
    at.switch_page("pages/review.py").run()
    assert not at.exception and "Password" not in [w.label for w in at.text_input]
    assert [t.value for t in at.title] == ["Review"]
    at.switch_page("pages/home.py").run()
    next(b for b in at.sidebar.button if b.label == "Log out").click().run()
    _assert_only_login_form(at)
    assert "_auth_user" not in at.session_state
    record(
        "deployment",
        "password login: wrong password, unknown user, empty; right one; logout",
        "3 refused, 1 in as reviewer alice (not editable), logged out",
    )


def test_reviewer_is_the_logged_in_user(root, alice_hash):
    """ui.reviewer(), which every review event records, returns the login, not a typed name."""
    at = AppTest.from_string(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "import streamlit as st\nimport ui\n"
        "ui.gate()\nui.sidebar()\nst.markdown('reviewer=' + ui.reviewer())\n",
        default_timeout=60,
    )
    at.secrets = _password_secrets(alice_hash)
    at.run()
    _log_in(at, "alice", PASSWORD)
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown] == ["reviewer=alice"]


def test_oidc_login_uses_streamlits_user(root, monkeypatch):
    monkeypatch.setenv("RESET_STUDIO_LOGIN", "oidc")
    auth = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "test-cookie-secret",
        "client_id": "id",
        "client_secret": "secret",
        "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
    }
    at = _app({"auth": auth})
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception and [b.label for b in at.button] == ["Log in"]
    assert len(at.sidebar.children) == 0 and not at.text_input
    at.switch_page("pages/review.py").run()
    assert [b.label for b in at.button] == ["Log in"] and len(at.sidebar.children) == 0

    at = _app({"auth": auth})
    at.user = {"is_logged_in": True, "email": "bob@example.org", "name": "Bob"}
    at.run()
    assert not at.exception, at.exception
    reviewer = next(w for w in at.sidebar.text_input if w.label == "Reviewer")
    assert reviewer.value == "bob@example.org" and reviewer.disabled
    record("deployment", "oidc login (st.user)", "anonymous: login button only; in: reviewer bound")


def test_login_fails_closed_on_bad_settings(root, monkeypatch, alice_hash):
    from pydantic import ValidationError

    from reset_core.deployment import Deployment

    with pytest.raises(ValidationError, match="login"):
        Deployment.load(env={}, secrets={"reset_studio": {"login": "sometimes"}})
    cases = {
        "no users": {"reset_studio": {"login": "password"}},
        "malformed hash": {"reset_studio": {"login": "password", "users": {"alice": "hunter2"}}},
    }
    expected = {"no users": "reset-studio user hash", "malformed hash": "user 'alice'"}
    for case, secrets in cases.items():
        at = _app(secrets).run()
        assert not at.exception, at.exception
        assert any(expected[case] in e for e in _errors(at)), (case, _errors(at))
        assert len(at.sidebar.children) == 0 and "Reviewer" not in str(at.text_input), case
    # oidc without an [auth] section: refused, never open.
    monkeypatch.setenv("RESET_STUDIO_LOGIN", "oidc")
    at = _app().run()
    assert any("[auth]" in e for e in _errors(at)) and len(at.sidebar.children) == 0
    record("deployment", "login misconfigured (4 kinds)", "app stays closed with the reason")


def test_user_hash_cli_line_logs_in(monkeypatch, capsys):
    """`reset-studio user hash` prints a secrets line whose hash the login accepts."""
    import io
    import tomllib

    from reset_core.cli import main
    from reset_core.deployment import Deployment

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "hash", "alice", "--stdin"]) == 2
    assert "shorter than 12" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "hash", "alice", "--stdin"]) == 0
    line = capsys.readouterr().out
    assert PASSWORD not in line
    d = Deployment.load(env={}, secrets={"reset_studio": {"users": tomllib.loads(line)}})
    assert d.authenticate("alice", PASSWORD) and not d.authenticate("alice", PASSWORD + "!")
    # The same line works from the environment: "name=hash name=hash".
    env = {"RESET_STUDIO_USERS": line.replace(" = ", "=").replace('"', "").strip() + " bob=x"}
    with pytest.raises(ValueError, match="user 'bob'"):
        Deployment.load(env=env)
    env["RESET_STUDIO_USERS"] = env["RESET_STUDIO_USERS"].replace(
        " bob=x", "; carol=" + line.split('"')[1]
    )
    assert set(Deployment.load(env=env).users) == {"alice", "carol"}


def test_workers_get_the_apps_deployment_settings(tmp_path, monkeypatch):
    """jobs.launch hands the settings the app read (secrets included) to the worker."""
    import contextvars

    import pyarrow as pa

    from reset_core import deployment as dep
    from reset_core import jobs
    from reset_core.store import connect

    con = connect(tmp_path / "w.duckdb")
    job_id = jobs.create_job(
        con, tmp_path / "jobs", "sample", "job_entries:write_items", {}, pa.table({"item": ["a"]})
    )
    seen: dict = {}

    class Spy:  # the worker's command line and environment, without starting it
        def __init__(self, args, **kwargs):
            seen.update(kwargs["env"])
            self.pid = 0

    monkeypatch.setattr(jobs.subprocess, "Popen", Spy)
    app = dep.Deployment(
        data_root=tmp_path,
        allowed_key_envs=["TEAM_JUDGE_KEY"],
        allowed_base_urls=["http://127.0.0.1:9/v1"],
        login="password",
        users={"alice": hash_password(PASSWORD, n=2**10)},
    )
    contextvars.copy_context().run(lambda: (dep.use(app), jobs.launch(con, job_id)))
    worker = dep.Deployment.load(env=seen)
    assert worker.model_dump(exclude={"users"}) == app.model_dump(exclude={"users"})
    assert not worker.users and not any("scrypt" in v for v in seen.values())
    con.close()


# ----------------------------------------------------------------------------- paths

ESCAPES = {
    "../": lambda out: "../outside",
    "absolute outside": lambda out: str(out),
    "symlink out of the root": lambda out: "./escape",
}


def test_login_off_by_default_and_database_path_is_confined(root, outside, steady_router):
    at = _app().run()
    # Login is off by default: the app opens, the reviewer is typed in the sidebar.
    assert not at.exception and "Password" not in [w.label for w in at.text_input]
    labels = {w.label: w for w in at.sidebar.text_input}
    assert set(labels) == {"Database", "Reviewer"} and not labels["Reviewer"].disabled
    field = next(w for w in at.sidebar.text_input if w.label == "Database")
    field.set_value(str(root / "other.duckdb")).run()
    assert not at.exception and not _errors(at)
    assert (root / "other.duckdb").exists()  # the page opened it
    for case, target in ESCAPES.items():
        typed = f"{target(outside)}/db.duckdb"
        next(w for w in at.sidebar.text_input if w.label == "Database").set_value(typed).run()
        assert not at.exception, at.exception
        assert any(e.startswith("Database: ") and OUTSIDE_ERROR in e for e in _errors(at)), case
        assert not at.metric and not at.header  # no page ran
        assert not (outside / "db.duckdb").exists(), case
        record("deployment", f"database path, {case}", "refused, no file created")


def test_import_path_is_confined(root, outside):
    (root / "inside.jsonl").write_text((outside / "x.jsonl").read_text())
    at = _app().run()
    at.switch_page("pages/data.py").run()
    field = "File or Hugging Face datasets folder"

    def preview(at) -> bool:
        return any(m.value.startswith("**Preview**") for m in at.markdown)

    at.text_input(key="import_path").input("inside.jsonl").run()
    assert not at.exception and not _errors(at) and preview(at)
    for case, target in ESCAPES.items():
        at.text_input(key="import_path").input(f"{target(outside)}/x.jsonl").run()
        assert not at.exception, at.exception
        assert any(e.startswith(f"{field}: ") and OUTSIDE_ERROR in e for e in _errors(at)), case
        assert not preview(at), case  # nothing read
        record("deployment", f"import path, {case}", "refused, file not read")


def _seed_curated_set(db: Path) -> None:
    from reset_core.curation.sets import create_reference_set
    from reset_core.ingest.demo import load_demo
    from reset_core.store import connect

    con = connect(db)
    load_demo(con)
    create_reference_set(con, target_size=8)
    con.close()


def test_export_and_training_folders_are_confined(root, outside):
    _seed_curated_set(root / "app.duckdb")
    (root / "models" / "base").mkdir(parents=True)
    at = _app().run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    before = sorted(p.name for p in outside.iterdir())

    # Export folder: inside writes the set, outside writes nothing.
    at.text_input(key="exp_out").set_value("exports-in")
    at.button(key="exp_go").click().run()
    assert not at.exception and not _errors(at)
    assert list((root / "exports-in").glob("*"))
    for case, target in ESCAPES.items():
        at.text_input(key="exp_out").set_value(f"{target(outside)}/exports")
        at.button(key="exp_go").click().run()
        assert any(e.startswith("Folder: ") and OUTSIDE_ERROR in e for e in _errors(at)), case
        assert sorted(p.name for p in outside.iterdir()) == before, case
        record("deployment", f"export folder, {case}", "refused, nothing written")

    # Model path: a folder in the data root or the bundled models folder, or a hub id.
    at.selectbox(key="tr_model").set_value("another path or hub id").run()
    for ok in (str(root / "models" / "base"), str(paths.MODELS_DIR / "any"), "org/model"):
        at.text_input(key="tr_path").set_value(ok).run()
        assert not any(OUTSIDE_ERROR in e for e in _errors(at)), ok
        assert not at.button(key="tr_go").disabled, ok
    for case, target in ESCAPES.items():
        at.text_input(key="tr_path").set_value(target(outside)).run()
        assert any(
            e.startswith("Model path or hub id: ") and OUTSIDE_ERROR in e for e in _errors(at)
        ), case
        assert at.button(key="tr_go").disabled, case  # nothing can be started
        record("deployment", f"training base model folder, {case}", "refused, start disabled")

    # Output folder: inside accepted, outside refused and the run cannot start.
    at.text_input(key="tr_path").set_value(str(root / "models" / "base"))
    at.text_input(key="tr_out").set_value("runs/mine").run()
    assert not _errors(at) and not at.button(key="tr_go").disabled
    for case, target in ESCAPES.items():
        at.text_input(key="tr_out").set_value(f"{target(outside)}/run").run()
        assert any(e.startswith("Output folder: ") and OUTSIDE_ERROR in e for e in _errors(at))
        assert at.button(key="tr_go").disabled, case
        record("deployment", f"training output folder, {case}", "refused, start disabled")
    assert sorted(p.name for p in outside.iterdir()) == before


def test_sample_model_folder_is_confined(root, outside):
    (root / "models" / "mine").mkdir(parents=True)
    at = _app().run()
    at.switch_page("pages/sample.py").run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    for ok in ("models/mine", str(paths.MODELS_DIR / "smollm2-135m-instruct")):
        at.text_input(key="sample_model_ref").set_value(ok).run()
        assert not at.exception and not any(OUTSIDE_ERROR in e for e in _errors(at)), ok
    for case, target in ESCAPES.items():
        at.text_input(key="sample_model_ref").set_value(target(outside)).run()
        assert any(e.startswith("Model folder: ") and OUTSIDE_ERROR in e for e in _errors(at))
        assert at.button(key="sample_start").disabled, case
        record("deployment", f"sampling model folder, {case}", "refused, start disabled")
    # A "hub id" that transformers would read from disk is a folder too.
    at.radio(key="sample_model_source").set_value("Hub id").run()
    at.text_input(key="sample_model_ref").set_value("../../etc").run()
    assert any(OUTSIDE_ERROR in e for e in _errors(at))
    at.text_input(key="sample_model_ref").set_value("HuggingFaceTB/SmolLM2-135M").run()
    assert not any(OUTSIDE_ERROR in e for e in _errors(at))


# ----------------------------------------------------------------------------- uploads


def test_uploads_go_to_a_folder_per_session_written_once(root, tmp_path, monkeypatch):
    import ui  # the app's module: AppTest runs the app in this process

    rows = {
        "a": json.dumps({"instruction": "Say A.", "output": "A."}) + "\n",
        "b": json.dumps({"instruction": "Say B.", "output": "B."}) + "\n",
    }
    sessions, runtime_id = {}, ui._session_id
    for sid in rows:
        # Session a has the id Streamlit's runtime gives it (in AppTest always "test
        # session id"); a real server gives each browser tab its own, which session b
        # stands in for.
        if sid == "b":
            monkeypatch.setattr(ui, "_session_id", lambda: "session-b")
        at = _app().run()
        at.switch_page("pages/data.py").run()
        at.file_uploader[0].set_value(("../../evil/data.jsonl", rows[sid].encode(), "text/plain"))
        at.run()
        assert not at.exception, at.exception
        sessions[sid] = at
    folders = {"a": root / "uploads" / "testsessionid", "b": root / "uploads" / "session-b"}
    files = sorted((root / "uploads").rglob("*.*"))
    assert files == sorted(folders[sid] / "data.jsonl" for sid in rows)
    assert [(folders[sid] / "data.jsonl").read_text() for sid in rows] == list(rows.values())
    assert not (tmp_path / "evil").exists() and not (root.parent / "evil").exists()
    first = folders["a"] / "data.jsonl"

    # Reruns (a widget change, a plain rerun) do not write it again.
    monkeypatch.setattr(ui, "_session_id", runtime_id)
    at = sessions["a"]
    stamp = (first.stat().st_ino, first.stat().st_mtime_ns)
    at.text_input(key="import_source").input("mine").run()
    at.run()
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == stamp
    # A new upload replaces the old one; removing it from the uploader removes the file.
    at.file_uploader[0].set_value(("other.jsonl", rows["b"].encode(), "text/plain")).run()
    assert sorted(p.name for p in folders["a"].iterdir()) == ["other.jsonl"]
    at.file_uploader[0].clear().run()
    assert not list(folders["a"].iterdir())
    assert (folders["b"] / "data.jsonl").exists()  # the other session's
    record(
        "deployment",
        "uploads: two sessions, same name with ../ in it",
        "separate folders in the data root, written once, removed with the upload",
        sessions=2,
        rewrites=0,
    )


# ----------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_browser_every_page_url_shows_only_the_login_form_until_logged_in(root, alice_hash):
    from browser import chromium_page, streamlit_server

    urls = ["/review"] + ["/" + Path(p).stem for p in PAGE_FILES if Path(p).stem != "home"]
    urls.insert(1, "/")
    env = {
        "RESET_STUDIO_LOGIN": "password",
        "RESET_STUDIO_USERS": f"alice={alice_hash}",
        "RESET_STUDIO_DATA_ROOT": str(root),
    }
    with (
        streamlit_server(root / "app.duckdb", env=env) as url,
        chromium_page() as page,
    ):
        for path in urls:  # each visit is a new, anonymous session
            page.goto(url + path)
            page.get_by_role("textbox", name="Password").wait_for(timeout=30_000)
            assert page.locator("h1").all_inner_texts() == ["RESET Studio"], path
            assert page.get_by_test_id("stSidebar").count() == 0, path
            assert page.get_by_text("Reviewer").count() == 0, path
        assert not (root / "app.duckdb").exists(), "the database was opened before login"
        page.get_by_role("textbox", name="User name").fill("alice")
        page.get_by_role("textbox", name="Password").fill("wrong password!")
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("Wrong user name or password.").wait_for(timeout=30_000)
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("Logged in as").wait_for(timeout=30_000)
        page.get_by_role("link", name="Data").click()
        page.get_by_role("heading", name="Import examples").wait_for(timeout=30_000)
    record(
        "deployment",
        "real Chromium: anonymous visit to every page URL, then login",
        "only the login form on each; wrong password refused; right one reaches the pages",
        urls=len(urls),
    )
