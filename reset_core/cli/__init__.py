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


def main(argv: list[str] | None = None) -> int:
    """Run one ``reset-studio`` command; return its exit status.

    >>> import tempfile
    >>> from pathlib import Path
    >>> db = Path(tempfile.mkdtemp()) / "t.duckdb"
    >>> main(["--db", str(db), "db", "init"])  # doctest: +ELLIPSIS
    database ready at .../t.duckdb
    0
    """
    from reset_core.store import DatabaseBusy

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DatabaseBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
