"""RESET Studio's library: every pipeline stage, with no UI import.

One package per stage of the RESET loop, named after it: ``ingest``, ``sampling``,
``judging``, ``scoring``, ``review``, ``analytics``, ``curation``, ``training``, and
``cli`` (one module per stage). Inside, the same shape wherever it applies:
``config.py`` (validated value objects whose help text drives the CLI and the UI),
the work, ``worker.py`` (runs in a worker process, never opens the database),
``launch.py`` (the app side of a job) and ``queries.py`` (what pages and the CLI read).

The shared base: ``store`` + ``migrations`` (DuckDB), ``jobs`` (worker processes and
shards), ``models`` (the embedded default model), ``paths``, ``options`` (config ->
CLI flags and UI help), ``aspects``, ``atomic`` (atomic writes), ``errors``.
The Streamlit app in ``app.py``/``pages/`` is a thin view over these.
"""

__version__ = "0.1.0"
