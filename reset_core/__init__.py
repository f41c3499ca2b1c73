"""RESET Studio's library: every pipeline stage, with no UI import.

Stages by file: ``ingest`` (examples in), ``store``/``migrations`` (DuckDB),
``jobs`` (worker processes and shards), ``models`` (the embedded default model),
``cli`` (the headless entry point). The Streamlit app in ``app.py``/``pages/`` is a
thin view over these modules.
"""

__version__ = "0.1.0"
