"""Shared pieces of the Streamlit views: login, the one database connection, sidebar state.

The app process is the database's one writer: a single read-write connection lives
in ``st.cache_resource``; every script run (each its own thread) works through its
own ``cursor()``, as DuckDB requires.

A shared deployment (:mod:`reset_core.deployment`) adds three rules the pages follow
through this module: :func:`gate` shows only the login form until the user is in,
:func:`confined` keeps every typed path inside the data root, and :func:`saved_upload`
writes an upload once into this session's own folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st
from pydantic import ValidationError
from streamlit.errors import StreamlitAuthError, StreamlitSecretNotFoundError

from reset_core import deployment as dep
from reset_core import paths, store
from reset_core.atomic import atomic_path
from reset_core.deployment import Deployment, PathNotAllowed

#: Seconds between two refreshes of a page's job progress while a job of its kind runs.
POLL_S = 1.0


def _route_through_app() -> None:
    """Make a first visit straight to a page URL still go through ``app.py``.

    Because a ``pages/`` folder exists, Streamlit starts in its legacy multipage mode
    (each file its own app) until ``st.navigation`` has run once in the process, so
    opening ``/data`` first would skip the router, its sidebar and page config.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _require_gate() -> None:
    """Send an anonymous page run that skipped the router (and so the login) back through it.

    The import-time reroute above fires once per process; a second session that opens a
    page URL while the first is still importing this module would run that page in
    Streamlit's legacy mode (its ``_mpa_v1``), without ``app.py``. Every page reaches the
    database or the reviewer through this module before it shows any data, so the check
    sits here. A logged-in user (or any user, with login off) goes on: the run keeps its
    button clicks. tests/reliability/test_deployment.py opens every page that way
    (AppTest starts each run in legacy mode), so a Streamlit that renames the function
    fails it.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_mpa_v1" and "streamlit" in frame.f_code.co_filename:
            try:
                d = deployment()
            except (ValidationError, StreamlitSecretNotFoundError):
                d = None  # the router says what is wrong
            if d is not None and (d.login == "none" or logged_in_user(d)):
                return
            from streamlit.runtime.pages_manager import PagesManager

            PagesManager.uses_pages_directory = False
            st.rerun()
        frame = frame.f_back


#: Seconds between two tries to open a database a CLI command holds.
BUSY_RETRY_S = 2.0


@st.cache_resource(show_spinner=False)
def _connection(path: str):
    """The app's one connection to ``path``, and the socket that serves CLI commands on it.

    Once the app holds the database no other process may open it, so from here on a
    ``reset-studio`` command on the same file is run by the app (reset_core.handoff).
    A failure to open is not cached: the next run tries again.
    """
    from reset_core import handoff

    con = store.connect(path)
    handoff.serve(path)
    return con


def _open(path: str):
    """:func:`_connection`, or, while a CLI command holds the database, say which and retry.

    A command started before the app was opened holds the file until it ends (the
    app cannot hand it anything); the page waits and reruns instead of failing.
    """
    try:
        return _connection(path)
    except store.DatabaseBusy as e:
        st.info(
            f"The database {path} is in use by "
            f"{e.holder or 'another process'}. The app opens it as soon as that command "
            f"ends (trying again every {BUSY_RETRY_S:g} s)."
        )
        import time

        time.sleep(BUSY_RETRY_S)
        st.rerun()


def db_path() -> str:
    """The database this session uses (sidebar field; defaults to $RESET_STUDIO_DB).

    Always inside the data root: the sidebar refuses any other, and this check is the
    same one, so no page can open a database elsewhere.
    """
    _require_gate()
    typed = st.session_state.get("db_path") or str(paths.default_db_path().resolve())
    return str(dep.current().confine(typed, field="Database"))


def cursor(path: str | None = None):
    """A DuckDB cursor on the app's one connection, for this script run's thread.

    ``path``: the database, for code that runs outside a script run (a download
    button's deferred data), where the session's sidebar state is not at hand.
    """
    if path is None:
        _require_gate()
    return _open(str(Path(path or db_path()).resolve())).cursor()


def reviewer() -> str:
    """Who is acting: the logged-in user when login is on, else the sidebar name."""
    _require_gate()
    if dep.current().shared:
        return logged_in_user(dep.current()) or "anonymous"
    return st.session_state.get("reviewer") or "anonymous"


# ----------------------------------------------------------------------------- login


def _secrets() -> dict:
    """The app's Streamlit secrets; ``{}`` only when there is no secrets file at all.

    A secrets file that does not parse raises: read as "no settings", a typo would
    switch login off.
    """
    try:
        return st.secrets.to_dict()
    except StreamlitSecretNotFoundError as e:
        if getattr(e, "error_id", None) == "no-secrets-found":
            return {}
        raise


def deployment() -> Deployment:
    """This server's settings, read on each run (``[reset_studio]`` in the secrets, then the
    environment) and handed to ``reset_core``, so the workers it starts get them too."""
    return dep.use(Deployment.load(secrets=_secrets()))


def logged_in_user(d: Deployment) -> str | None:
    """The logged-in user's name (password) or e-mail (OIDC); None when nobody is."""
    if d.login == "password":
        name = st.session_state.get("_auth_user")
        return name if name in d.users else None  # a removed user is out on the next run
    if d.login == "oidc" and st.user.get("is_logged_in"):
        return st.user.get("email") or st.user.get("name") or st.user.get("sub") or "unknown"
    return None


def gate(pages: list | None = None) -> None:
    """With login on, stop the run at the login form until the user is in.

    Call it before the sidebar and running ``st.navigation``: a page (any URL, /review
    as much as /) runs only after it. ``pages``: the router's pages, registered hidden
    while the form stands in for the one the URL names (no page list shows, and the
    user lands on that page once in). It fails closed: settings that do not parse, or a
    login mode with nobody configured to log in, stop the app with the reason.
    """
    try:
        d = deployment()
    except (ValidationError, StreamlitSecretNotFoundError) as e:
        if pages:
            st.navigation(pages, position="hidden")
        st.error(f"The deployment settings are invalid, so the app stays closed.\n\n{e}")
        st.stop()
    if d.login == "none" or logged_in_user(d):
        return
    if pages:
        st.navigation(pages, position="hidden")  # selected, never run
    st.title("RESET Studio")
    if d.login == "password":
        _password_form(d)
    else:
        _oidc_button(d)
    st.stop()


def _password_form(d: Deployment) -> None:
    if not d.users:
        st.error(
            'Password login is on but no users are configured: add `name = "<hash>"` lines '
            "under `[reset_studio.users]` in .streamlit/secrets.toml (make a hash with "
            "`reset-studio user hash NAME`)."
        )
        return
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        # No key: the password is not kept in the session state.
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if d.authenticate(name, password):
            st.session_state["_auth_user"] = name.strip()
            st.rerun()
        st.error("Wrong user name or password.")


def _oidc_button(d: Deployment) -> None:
    if "auth" not in _secrets():
        st.error(
            "OIDC login is on but the app's secrets have no [auth] section: see Streamlit's "
            "st.login documentation (redirect_uri, cookie_secret, client_id, client_secret, "
            "server_metadata_url)."
        )
        return
    if st.button("Log in", type="primary", key="login_oidc"):
        try:
            st.login(d.oidc_provider)
        except StreamlitAuthError as e:  # e.g. Authlib missing, provider not configured
            st.error(f"Cannot start the login: {e}")


def logout() -> None:
    """Log out: forget this session's state (the next user of this browser starts clean)."""
    login = dep.current().login
    for key in list(st.session_state):
        del st.session_state[key]
    if login == "oidc":
        st.logout()  # drops the identity cookie and starts a new session
    else:
        st.rerun()


# ----------------------------------------------------------------------------- paths


def data_root() -> Path:
    """The folder every typed path must lie in (``$RESET_STUDIO_DATA_ROOT``)."""
    return Path(dep.current().data_root)


def confined(path: str | Path, field: str) -> Path | None:
    """``path`` resolved inside the data root; else None after an error naming ``field``."""
    try:
        return dep.current().confine(path, field=field)
    except PathNotAllowed as e:
        st.error(str(e))
        return None


def confined_model(ref: str, field: str, *, local: bool = False) -> str | None:
    """A typed model reference: a hub id as it is, a folder (``local``: always) inside the
    data root or the bundled models folder; else None after an error naming ``field``."""
    try:
        return dep.current().confine_model(ref, field=field, local=local)
    except PathNotAllowed as e:
        st.error(str(e))
        return None


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def saved_upload(upload) -> Path:
    """An uploaded file on disk, in this session's own folder under the data root.

    Written once per upload (keyed by the uploader's file id), not on every rerun. The
    folder keeps only the upload in hand: a new one replaces it and :func:`drop_uploads`
    empties it, so nothing piles up; folders of sessions idle a day are swept.
    """
    root = dep.current().data_root
    folder = dep.session_upload_dir(root, _session_id())
    target = folder / dep.safe_upload_name(upload.name)
    if st.session_state.get("_upload") != (upload.file_id, str(target)) or not target.exists():
        drop_uploads(keep=target)
        with atomic_path(target) as tmp:
            tmp.write_bytes(upload.getvalue())
        st.session_state["_upload"] = (upload.file_id, str(target))
        dep.sweep_uploads(root, keep=folder)
    return target


def drop_uploads(keep: Path | None = None) -> None:
    """Remove this session's uploaded files (but ``keep``): the uploader no longer holds them."""
    mine = dep.session_upload_dir(dep.current().data_root, _session_id(), create=False)
    if mine.is_dir():
        for f in mine.iterdir():
            if f != keep and f.is_file():
                f.unlink(missing_ok=True)
    if keep is None:
        st.session_state.pop("_upload", None)


# ----------------------------------------------------------------------------- sidebar


def sidebar() -> None:
    """Who is logged in, the database and the reviewer name; stops on a database path
    outside the data root (nothing is opened)."""
    d = dep.current()
    user = logged_in_user(d) if d.shared else None
    # Resolved: a relative $RESET_STUDIO_DB means the working directory, while a relative
    # path typed here means the data root.
    st.session_state.setdefault("db_path", str(paths.default_db_path().resolve()))
    if user:
        st.session_state["reviewer"] = user  # bound to the login, not typed
    with st.sidebar:
        if user:
            st.caption(f"Logged in as **{user}**")
            if st.button("Log out", key="logout"):
                logout()
        st.text_input(
            "Database",
            key="db_path",
            help="DuckDB file owned by this app, inside the data root "
            f"{d.data_root} (set $RESET_STUDIO_DB to change the default).",
        )
        st.text_input(
            "Reviewer",
            key="reviewer",
            placeholder="your name",
            disabled=bool(user),
            help="Your login: recorded with every review action you take."
            if user
            else "Recorded with every review action you take.",
        )
    if confined(st.session_state["db_path"], "Database") is None:
        st.stop()


def launch_button(label: str, estimate, key: str, disabled: bool = False) -> bool:
    """A stage's launch button under its size and estimated duration; True to launch now.

    ``estimate`` is the stage's :class:`reset_core.jobs.LaunchEstimate` (None: nothing
    to estimate yet). A launch estimated above ``jobs.CONFIRM_ABOVE_S`` asks first: its
    button starts nothing but offers "Yes, start a ~12 min job" (key ``{key}_confirm``),
    which launches. The question belongs to that duration: once a changed plan moves
    the estimate by a minute or more, it is withdrawn.
    """
    if estimate is not None:
        st.info(str(estimate))
    asking = f"_{key}_asking"
    duration = round(estimate.seconds / 60) if estimate is not None else None
    if st.button(label, type="primary", key=key, disabled=disabled):
        if estimate is None or not estimate.needs_confirmation:
            st.session_state.pop(asking, None)
            return True
        st.session_state[asking] = duration
    if disabled or st.session_state.get(asking) != duration:
        st.session_state.pop(asking, None)
        return False
    question = st.empty()
    with question.container():
        st.warning(f"This job should take {estimate.duration}. Start it?")
        confirmed = st.button(estimate.confirm_label, key=f"{key}_confirm")
    if confirmed:
        question.empty()  # answered: the page goes on to say the job started
        st.session_state.pop(asking, None)
    return confirmed


def follow_launched(launched_key: str, browse_key: str, reset: dict | None = None) -> None:
    """Point a job browser (the widget ``browse_key``) at the job the user just launched.

    The page stores a launched job's id under ``launched_key``; on the next run this
    selects it once, so the browser shows the new job while it runs and when it ends,
    and the user can still pick another one afterwards. ``reset``: other widgets to
    put back (e.g. the page number). Call it before the browser widget is drawn.
    """
    launched = st.session_state.get(launched_key)
    followed = f"_followed_{launched_key}"
    if launched and st.session_state.get(followed) != launched:
        st.session_state[browse_key] = launched
        st.session_state[followed] = launched
        for key, value in (reset or {}).items():
            st.session_state[key] = value


# Last, so the module is complete before the reroute's exception can leave this import:
# several first visits at once to a fresh server used to find a half-built ``ui`` (no
# ``cursor`` yet) while one of them was rerouting.
_route_through_app()
