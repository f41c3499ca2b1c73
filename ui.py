"""Shared pieces of the Streamlit views: the one database connection, sidebar state.

The app process is the database's one writer: a single read-write connection lives
in ``st.cache_resource``; every script run (each its own thread) works through its
own ``cursor()``, as DuckDB requires.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from reset_core import paths, store
from reset_core.jobs import about

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


_route_through_app()


@st.cache_resource(show_spinner=False)
def _connection(path: str):
    return store.connect(path)


def db_path() -> str:
    """The database this session uses (sidebar field; defaults to $RESET_STUDIO_DB)."""
    return st.session_state.get("db_path") or str(paths.default_db_path())


def cursor(path: str | None = None):
    """A DuckDB cursor on the app's one connection, for this script run's thread.

    ``path``: the database, for code that runs outside a script run (a download
    button's deferred data), where the session's sidebar state is not at hand.
    """
    return _connection(str(Path(path or db_path()).resolve())).cursor()


def reviewer() -> str:
    """Who is acting: the logged-in user when login is configured, else the sidebar name."""
    user = getattr(st, "user", None)
    if user is not None and getattr(user, "is_logged_in", False):
        return user.get("email") or user.get("name") or "unknown"
    return st.session_state.get("reviewer") or "anonymous"


def sidebar() -> None:
    st.session_state.setdefault("db_path", str(paths.default_db_path()))
    with st.sidebar:
        st.text_input(
            "Database",
            key="db_path",
            help="DuckDB file owned by this app (set $RESET_STUDIO_DB to change the default).",
        )
        st.text_input(
            "Reviewer",
            key="reviewer",
            placeholder="your name",
            help="Recorded with every review action you take.",
        )


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
        st.warning(f"This job should take {about(estimate.seconds)}. Start it?")
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
