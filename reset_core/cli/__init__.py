"""The ``reset-studio`` command: one subcommand per stage, over the same library calls as the app.

Each stage's commands live in the module named after the stage, each with an
``add_commands(sub)`` and its ``_cmd_*`` functions; this module only assembles them,
holds the ``--db`` option and turns a busy database into exit status 3::

    cli/db.py        db info, db init          cli/judging.py   judge
    cli/models.py    model prepare             cli/scoring.py   select, panel
    cli/ingest.py    import, rekind            cli/curation.py  curate, export
    cli/sampling.py  sample                    cli/training.py  train
    cli/ingest.py    benchmark                 cli/evaluation.py evaluate
    cli/experiments.py experiment              cli/report.py    report
    cli/users.py     user hash

Exit status: 0 done, 1 the work failed, 2 rejected options, 3 the database is busy
(another process, e.g. the app, holds it). Examples::

    reset-studio --help
    reset-studio sample --help
    reset-studio --db other.duckdb db info
    python -m reset_core.cli db info        # the same, without the console script
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reset_core import paths
from reset_core.cli import (
    curation,
    db,
    evaluation,
    experiments,
    ingest,
    judging,
    models,
    report,
    sampling,
    scoring,
    training,
    users,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``reset-studio`` parser: ``--db`` and every stage's subcommands."""
    parser = argparse.ArgumentParser(prog="reset-studio", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        default=str(paths.default_db_path()),
        help="DuckDB file (default: $RESET_STUDIO_DB or data/reset_studio.duckdb)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # The order of the stages is the order of the subcommands in --help.
    stages = (ingest, db, models, judging, scoring, sampling, curation, training, evaluation)
    for stage in (*stages, experiments, report, users):
        stage.add_commands(sub)
    return parser


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    """Run one ``reset-studio`` command; return its exit status.

    When the database is busy because the app holds it, the app runs the command
    (:mod:`reset_core.handoff`) and this returns its status; with no app, 3.
    ``args``: ``argv`` already parsed (the app parses a served command itself, to
    resolve its paths against the caller's directory).

    >>> import tempfile
    >>> from pathlib import Path
    >>> db = Path(tempfile.mkdtemp()) / "t.duckdb"
    >>> main(["--db", str(db), "db", "init"])  # doctest: +ELLIPSIS
    database ready at .../t.duckdb
    0
    """
    from reset_core import handoff
    from reset_core.cli import exit_codes
    from reset_core.store import DatabaseBusy

    argv = sys.argv[1:] if argv is None else list(argv)
    if args is None:
        args = build_parser().parse_args(argv)
    # A live app serving this database holds it, so hand the command over before it
    # starts (it would only meet DatabaseBusy after printing or reading its input).
    # --db goes first, resolved, so the app's own $RESET_STUDIO_DB cannot change it.
    db = str(Path(args.db).resolve())
    code = handoff.delegate(["--db", db, *argv], db)
    if code is not None:
        return code
    try:
        return args.func(args)
    except DatabaseBusy as e:
        # An app that opened the database just now: it runs the command after all.
        code = handoff.delegate(["--db", db, *argv], db)
        if code is not None:
            return code
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.BUSY
