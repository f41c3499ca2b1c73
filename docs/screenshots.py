"""The README's screenshots, taken from the real app after the walk-through has run.

What it does, start to finish (reproducible: nothing is drawn by hand):

1. builds its own database with the demo set (``reset-studio db init --demo``, what
   ``make app`` runs);
2. runs the walk-through headless with the CLI: ``reset-studio experiment --recipe
   docs/walkthrough.toml`` (MTL on references, sample with the MTL checkpoint, the
   offline judges, select, curate RESET, train RESET, then one evaluation of base vs MTL
   vs RESET on test_seen and test_unseen), the same stage calls the pages make;
3. serves ``app.py`` with ``streamlit run`` against that database and saves, through
   Playwright and Debian's Chromium, ``docs/screenshot-home.png`` (the path and the
   lineage), ``docs/screenshot-train.png`` (the Train page set for the MTL run),
   ``docs/screenshot-evaluate.png`` (the results: plane and tables) and
   ``docs/screenshot-before-after.png`` (the before/after browser).

Run it from the repository root::

    .venv/bin/python docs/screenshots.py                   # everything, into docs/
    .venv/bin/python docs/screenshots.py --db walk.duckdb  # reuse a database it built

Measured on the shared 2-core CPU this repository is developed on (load average about 9):
24 minutes for step 2 (MTL 111 s, sampling 298 s, judging 9 s, RESET 113 s, the
evaluation 898 s: three checkpoints answering 8 tests of up to 128 tokens), 30 to 40
seconds for step 3. ``--db`` with an existing database skips steps 1 and 2.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the Playwright helpers the browser tests use
sys.path.insert(0, str(ROOT))

from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

RECIPE = ROOT / "docs" / "walkthrough.toml"
WIDTH = 1200  # px: readable on GitHub without a multi-megabyte PNG
T = 60_000  # ms: one page reaction on a busy machine


def cli(db: Path, *args: str) -> None:
    """Run ``reset-studio`` as a user would (the one installed next to this Python)."""
    exe = Path(sys.executable).parent / "reset-studio"
    started = time.monotonic()
    print("$ reset-studio --db", db, *args, flush=True)
    subprocess.run([str(exe), "--db", str(db), *args], check=True, cwd=ROOT)
    print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


def build(db: Path) -> None:
    cli(db, "db", "init", "--demo")
    cli(db, "experiment", "--recipe", str(RECIPE))


def evaluation_id(db: Path) -> str:
    from reset_core.evaluation.queries import list_evaluations
    from reset_core.store import connect

    con = connect(db, read_only=True)
    try:
        evals = list_evaluations(con)
    finally:
        con.close()
    done = evals[evals["status"] == "done"]
    if done.empty:
        raise SystemExit(f"{db}: no finished evaluation; run without --db to build one")
    return str(done.sort_values("created_at").iloc[-1]["evaluation_id"])


def idle(page) -> None:
    """Wait until the page's script run is over, so the shot is of a finished page."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stApp]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=T,
    )


def choose(page, key: str, option) -> None:
    """Pick ``option`` in the selectbox ``key`` as a person would; again if a script run
    that ended just then redrew the list shut."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        idle(page)
        page.locator(f".st-key-{key} input").click()
        try:
            page.get_by_role("option", name=option).click(timeout=3_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise RuntimeError(f"{option!r} never showed in the {key} list")


def shoot(page, name: str, height: int, top=None) -> None:
    """Save the window at ``height`` px, scrolled so ``top`` (a locator) starts it.

    Streamlit scrolls inside its own container, so a full-page shot is only the window:
    the window is made as tall as the part worth showing instead.
    """
    page.set_viewport_size({"width": WIDTH, "height": height})
    idle(page)
    if top is not None:
        top.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1500)  # charts (plotly, graphviz) draw after the script run ends
    out = ROOT / "docs" / f"screenshot-{name}.png"
    page.screenshot(path=str(out))
    print("saved", out.relative_to(ROOT), flush=True)


def screenshots(db: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    eval_id = evaluation_id(db)
    with streamlit_server(db) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        try:
            page.goto(url)
            expect(page.get_by_role("heading", name="Lineage")).to_be_visible(timeout=T)
            expect(page.locator("[data-testid=stGraphVizChart] svg")).to_be_visible(timeout=T)
            shoot(page, "home", 1150)

            # Train, as the MTL step looks: the MTL set (references) and the embedded model.
            page.goto(url + "/train")
            expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(timeout=T)
            page.get_by_role("tab", name="Train", exact=True).click()
            choose(page, "tr_set", re.compile(r" · MTL · "))
            start = page.get_by_role("combobox", name="Start from")
            expect(start).to_have_value(re.compile(r"\(embedded\)$"), timeout=T)
            shoot(page, "train", 1150)

            page.goto(f"{url}/evaluate?ev_tab=Results&evaluation={eval_id}")
            expect(page.locator(".st-key-ev_plane .js-plotly-plot")).to_be_visible(timeout=T)
            heading = page.get_by_role("heading", name="Instruction following vs faithfulness")
            shoot(page, "evaluate", 1300, top=heading)

            page.goto(f"{url}/evaluate?ev_tab=Before%2Fafter&evaluation={eval_id}")
            expect(page.locator(".st-key-ba_example_view")).to_be_visible(timeout=T)
            shoot(page, "before-after", 1700, top=page.get_by_role("tab", name="Before/after"))
        finally:
            browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, help="a database the walk-through already ran on")
    args = ap.parse_args()
    started = time.monotonic()
    if args.db and args.db.exists():
        db = args.db
    else:
        db = args.db or Path(tempfile.mkdtemp(prefix="reset-screenshots-")) / "walk.duckdb"
        build(db)
    screenshots(db)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
