"""Ingest (RESET step 0): examples in from JSONL, JSON, CSV, Parquet and ``datasets`` folders.

* ``importer.py``  presets and column mappings, validation, the all-or-nothing import
* ``demo.py``      the bundled demo set
* ``queries.py``   what the Data and Sample pages read: counts, breakdowns, filtered pages
"""
