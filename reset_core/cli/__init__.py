"""The ``reset-studio`` command: one subcommand per stage, over the same library calls as the app.

Each stage's commands live in the module named after the stage, each with an
``add_commands(sub)`` and its ``_cmd_*`` functions; this module only assembles them,
holds the ``--db`` option and turns a busy database into exit status 3::

    cli/db.py        db info, db init          cli/judging.py   judge
    cli/models.py    model(s) prepare|list|lineage
    cli/ingest.py    import, rekind            cli/scoring.py   select, panel
    cli/sampling.py  sample                    cli/curation.py  curate, export
    cli/ingest.py    benchmark                 cli/training.py  train
    cli/review.py    review list|export        cli/evaluation.py evaluate
    cli/analytics.py analytics agreement|tradeoff|decoding|grid
    cli/rubrics.py   rubrics list|show|save    cli/jobs.py      jobs list|status|cancel|resume
    cli/experiments.py experiment              cli/report.py    report
    cli/users.py     user hash

Shared pieces: ``cli/progress.py`` draws the progress bars of long work (stderr;
``--quiet`` turns them off); ``reset_core/config_file.py`` reads ``reset-studio.toml``
(``--config FILE``, else ``$RESET_STUDIO_CONFIG``, else ``./reset-studio.toml``), whose
values become the flags' defaults; ``cli/exit_codes.py`` is the table of exit statuses
(0 done, 1 failed, 2 rejected, 3 busy, 4 stopped and resumable, 5 not found, 130
interrupted). Examples::

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
    analytics,
    curation,
    db,
    evaluation,
    exit_codes,
    experiments,
    ingest,
    jobs,
    judging,
    models,
    report,
    review,
    rubrics,
    sampling,
    scoring,
    training,
    users,
)


class _Parser(argparse.ArgumentParser):
    """The top-level parser: reads ``reset-studio.toml`` first, so that its values are
    the flags' defaults when the command line is parsed (a flag given still wins)."""

    def parse_known_args(self, args=None, namespace=None):
        from reset_core import config_file

        args = sys.argv[1:] if args is None else list(args)
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config")
        explicit = pre.parse_known_args(args)[0].config
        try:
            path = config_file.find(explicit)
            if path is not None:
                config_file.apply_to_parser(self, config_file.load(path))
        except config_file.ConfigError as e:
            # One line naming the file, section and key; argparse's exit status for
            # rejected options (2), before any work or any write.
            self.exit(exit_codes.REJECTED, f"error: {e}\n")
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The ``reset-studio`` parser: ``--db``, ``--config`` and every stage's subcommands."""
    parser = _Parser(
        prog="reset-studio", description=__doc__.splitlines()[0], epilog=exit_codes.EPILOG
    )
    parser.add_argument(
        "--db",
        default=str(paths.default_db_path()),
        help="DuckDB file (default: $RESET_STUDIO_DB or data/reset_studio.duckdb)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="reset-studio.toml whose values are the flags' defaults (default: "
        "$RESET_STUDIO_CONFIG, else ./reset-studio.toml if present); see "
        "docs/reset-studio.example.toml",
    )
    # Plain parsers below the top: only the top one reads the config file (once).
    sub = parser.add_subparsers(dest="command", required=True, parser_class=argparse.ArgumentParser)
    # The order of the stages is the order of the subcommands in --help.
    stages = (ingest, db, models, judging, rubrics, scoring, sampling, review, curation)
    stages += (training, evaluation, analytics)
    for stage in (*stages, jobs, experiments, report, users):
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
