"""A newcomer's whole loop in Chromium, through the UI only, on the tiny Llama.

Home's next step (MTL) → Sample the base (launch, watch) → Judge (offline judges, launch, save a
selection) → Review (veto, force, undo) → Trade-off, Decoding → Train (curate, train
two steps) → Sample the trained model. The database starts as ``make app`` leaves it:
the demo set imported, nothing else.

What it holds the app to, at every job:

* the launch shows its size and estimated duration before it starts;
* the job's progress text changes by itself while it runs (no click in between);
* the page's counts are fresh once the job ends (no click, no reload);
* no decoding-setting id (``s:`` + hex) or review-event id (``ev-`` + timestamp)
  shows in the visible text of Sample, Judge, Review, Trade-off and Decoding.

These are soft checks: a failed one is recorded and the loop goes on the way a person
would (reloading the page), so one run reports every failure; the test fails at the
end with the list. Waits are on what a person sees, never on sleeps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from browser import chromium_page, streamlit_server
from playwright.sync_api import Page, expect

from reset_core.ingest.demo import load_demo
from reset_core.store import connect

pytestmark = pytest.mark.browser

T = 30_000  # ms: one page reaction
JOB_S = 90  # s: a tiny-model job on a busy 2-core machine, worker start-up included
SETTING_ID = re.compile(r"\bs:[0-9a-f]{8,}")
EVENT_ID = re.compile(r"\bev-\d{8}T\d{6}")


class Checks:
    """Soft assertions: record a failure, keep walking the loop, fail at the end."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failed.append(what)
        return ok

    def no_ids(self, page: Page, where: str) -> None:
        idle(page)
        text = page.inner_text("body")
        for name, pattern in (("setting id", SETTING_ID), ("event id", EVENT_ID)):
            found = sorted(set(pattern.findall(text)))
            self.check(not found, f"{where}: {name}s in the visible text: {found[:3]}")


def idle(page: Page) -> None:
    """Wait until the script run in flight (if any) has finished rendering."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stApp]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=T,
    )


def go(page: Page, link: str, title: str | None = None) -> None:
    """Open a page from the sidebar, as a person does; wait for its title."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
    heading = page.get_by_role("heading", name=title or link, exact=True).first
    expect(heading).to_be_visible(timeout=T)
    idle(page)


def enter(page: Page, key: str, value: str) -> None:
    """Type into the text or number input with this widget key and commit it."""
    box = page.locator(f".st-key-{key} input")
    box.fill(value)
    box.press("Enter")
    expect(box).to_have_value(value, timeout=T)
    idle(page)


def metric(page: Page, label: str) -> str:
    """A metric's value as shown, or "" while the page shows no such metric."""
    m = page.get_by_test_id("stMetric").filter(has_text=label)
    if m.count() == 0:
        return ""
    return m.first.get_by_test_id("stMetricValue").inner_text(timeout=1000)


def estimate(page: Page) -> str:
    """The launch estimate shown above a launch button: "N items · about M min (...)"."""
    info = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"^\d[\d,]* \w+ · "))
    expect(info.first).to_be_visible(timeout=T)
    return info.first.inner_text()


def progress_text(page: Page) -> str:
    """What the page says about running jobs: the text of its progress bars."""
    bars = page.get_by_test_id("stProgress")
    return " | ".join(bars.nth(i).inner_text() for i in range(bars.count()))


def watch_job(page: Page, checks: Checks, job: str, finished: Callable[[], bool]) -> None:
    """Follow a job just launched from this page without touching the page.

    Records every progress text shown until ``finished()`` (the page's fresh counts
    after the job) holds; checks the text changed and the counts came by themselves.
    Without them it reruns the page (Streamlit's R shortcut, which keeps what was typed),
    as a person would, so the loop can go on.
    """
    seen: list[str] = []
    deadline = time.monotonic() + JOB_S
    done = False
    while time.monotonic() < deadline:
        try:
            text = progress_text(page)
            done = finished()
        except Exception:  # noqa: BLE001 - an element replaced mid-read: read again
            page.wait_for_timeout(100)
            continue
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        elif not text and seen and seen[-1]:
            seen.append("")  # the progress went away
        if done:
            break
        page.wait_for_timeout(250)
    checks.check(bool(seen and seen[0]), f"{job}: no progress shown after the launch")
    checks.check(
        len(set(seen)) >= 2,
        f"{job}: the progress text did not change by itself while the job ran: {seen}",
    )
    if checks.check(done, f"{job}: counts not fresh {JOB_S}s after the launch (no rerun)"):
        return
    deadline = time.monotonic() + JOB_S
    while not finished():
        assert time.monotonic() < deadline, f"{job}: not finished even after rerunning"
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("r")
        page.wait_for_timeout(1000)
        idle(page)


def sample_job(page: Page, checks: Checks, job: str) -> None:
    """Small plan, launch, watch; the plan's "To generate" count drops to 0 after."""
    enter(page, "sample_count", "4")
    enter(page, "grid_max_tokens", "16")
    page.get_by_text("Device and batching").click()
    enter(page, "sample_batch", "2")  # many small batches: progress in steps
    expect(page.get_by_test_id("stMetric").filter(has_text="To generate")).to_contain_text(
        "24", timeout=T
    )
    shown = estimate(page)
    checks.check(shown.startswith("24 candidates · "), f"{job}: estimate says {shown!r}")
    page.locator(".st-key-sample_start button").click()
    watch_job(page, checks, job, lambda: metric(page, "To generate") == "0")


def test_newcomer_runs_the_whole_loop_in_the_browser(tmp_path, tiny_model_dir):
    db = tmp_path / "newcomer.duckdb"
    con = connect(db)
    load_demo(con)  # what `make app` (reset-studio db init --demo) leaves
    con.close()
    checks = Checks()
    with streamlit_server(db) as url, chromium_page() as page:
        # Home: the guided path starts with the MTL baseline; this newcomer samples the
        # base model first (the demo's shortcut), from the sidebar.
        page.goto(url)
        expect(page.get_by_role("link", name="Train MTL on references →")).to_be_visible(timeout=T)
        go(page, "Sample")

        # Sample: the tiny model from a local folder.
        page.locator(".st-key-sample_model_source").get_by_text("Local folder").click()
        idle(page)
        enter(page, "sample_model_ref", str(tiny_model_dir))
        shown = estimate(page)
        checks.check(
            "no run of this model yet: assuming" in shown, f"first estimate says {shown!r}"
        )
        sample_job(page, checks, "sampling")
        checks.no_ids(page, "Sample")

        # Judge: the offline judges (checked by default), launch, then save a selection.
        go(page, "Judge")
        # Before any verdict there are no picks to count: one pointer, no metrics.
        expect(page.get_by_text("Scores and picks appear here once")).to_be_visible(timeout=T)
        checks.check(metric(page, "Picks") == "", "Judge: a Picks count before any verdict")
        shown = estimate(page)
        checks.check(" judgments · " in shown, f"judge estimate says {shown!r}")
        page.locator(".st-key-launch button").click()
        watch_job(page, checks, "judging", lambda: metric(page, "Picks") not in ("", "0"))
        page.locator(".st-key-save_selection button").click()
        expect(page.get_by_text(re.compile(r"saved .*: \d+ picks")).first).to_be_visible(timeout=T)
        checks.no_ids(page, "Judge")

        # Review: veto the pick, force another candidate, undo the force.
        go(page, "Review")
        page.get_by_role("textbox", name="Reviewer").fill("newcomer")
        page.get_by_role("textbox", name="Reviewer").press("Enter")
        page.get_by_text("Enter your name").wait_for(state="detached", timeout=T)
        page.locator(".st-key-rv_next_unreviewed button").first.click()
        history = page.get_by_test_id("stExpander").filter(has_text="History (")
        expect(history).to_contain_text("History (0 events)", timeout=T)
        page.locator(".st-key-rv_veto_pick button").first.click()
        expect(history).to_contain_text("History (1 event)", timeout=T)
        page.locator(".st-key-rv_force_1 button").first.click()
        expect(history).to_contain_text("History (2 events)", timeout=T)
        page.locator(".st-key-rv_undo button").first.click()
        expect(history).to_contain_text("History (3 events)", timeout=T)
        history.get_by_text("History (3 events)").click()  # open it: what happened, in words
        checks.no_ids(page, "Review")

        for link, title in (("Trade-off", "Trade-off"), ("Decoding", "Decoding settings")):
            go(page, link, title)
            checks.no_ids(page, link)

        # Train: freeze the reviewed picks, then two LoRA steps on the tiny model.
        go(page, "Train")
        page.locator(".st-key-cur_freeze button").click()
        expect(page.get_by_text(re.compile(r"Froze curated set"))).to_be_visible(timeout=T)
        page.get_by_role("tab", name="Train").click()
        page.locator(".st-key-tr_model").click()
        page.get_by_role("option", name=re.compile(re.escape(tiny_model_dir.name))).click()
        idle(page)
        enter(page, "tr_max_steps", "2")
        # The estimate follows the typed max steps once the page's rerun has drawn it.
        steps = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"^2 steps · "))
        try:
            expect(steps.first).to_be_visible(timeout=T)
        except AssertionError:
            checks.check(False, f"train estimate says {estimate(page)!r}, not 2 steps")
        page.locator(".st-key-tr_go button").click()
        expect(page.get_by_text(re.compile(r"Started run"))).to_be_visible(timeout=T)
        page.get_by_role("tab", name="Runs").click()  # where the run is followed
        watch_job(
            page,
            checks,
            "training",
            lambda: page.get_by_text(re.compile(r"registered")).count() > 0,
        )

        # Sample the model just trained.
        go(page, "Sample")
        page.locator(".st-key-sample_model_source").get_by_text("Trained model").click()
        expect(page.locator(".st-key-sample_trained")).to_be_visible(timeout=T)
        idle(page)
        sample_job(page, checks, "sampling the trained model")
        checks.no_ids(page, "Sample (trained model)")

    assert not checks.failed, "\n".join(checks.failed)
