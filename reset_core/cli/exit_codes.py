"""The ``reset-studio`` exit statuses: what a script can act on without reading the text.

One table for every command, so a shell loop can tell "retry later" from "fix your flags"::

    reset-studio judge --llm --model gpt-4o --budget-usd 5
    case $? in
      0) echo done ;;
      4) reset-studio jobs resume "$JOB" --budget-usd 10 ;;  # stopped at the cap: relaunch
      3) sleep 60 ;;                                          # database busy: try later
      *) exit 1 ;;
    esac

>>> OK, FAILED, REJECTED, BUSY, STOPPED, NOT_FOUND, INTERRUPTED
(0, 1, 2, 3, 4, 5, 130)
"""

from __future__ import annotations

#: The work is done (or there was nothing to do).
OK = 0
#: The work failed: a job ended 'failed', an endpoint never answered, a worker crashed.
FAILED = 1
#: Options or input were rejected before any work started; the message names the field.
REJECTED = 2
#: The database is held by another process that cannot take this command (DuckDB has
#: one writer); nothing was written. Retry later.
BUSY = 3
#: The work stopped early on purpose and can be resumed: a budget cap, a cancel, a batch
#: that expired half done. ``reset-studio jobs resume JOB`` continues it.
STOPPED = 4
#: What the command names does not exist: an unknown job, set, run or rubric id.
NOT_FOUND = 5
#: Interrupted by Ctrl-C (128 + SIGINT, as shells report it); saved work is kept.
INTERRUPTED = 130

#: One line per status, for ``reset-studio --help``.
EPILOG = (
    "exit status: 0 done, 1 the work failed, 2 rejected options or input, "
    "3 the database is busy, 4 stopped early and resumable (budget cap, cancel, "
    "expired batch), 5 not found, 130 interrupted"
)
