"""Ingest (RESET step 0): examples in from JSONL, JSON, CSV, Parquet and ``datasets`` folders.

* ``config.py``    ImportOptions (help text for the CLI and the Data page), ImportRejected
* ``presets.py``   the common file shapes (Alpaca, Dolly, QA, NQ, summarization, chat,
  Self-Instruct) and column mappings
* ``readers.py``   one reader per file type, each naming the line of a broken record
* ``importer.py``  validation, dedupe, kinds and splits, the all-or-nothing import
* ``demo.py``      the bundled demo set
* ``queries.py``   what the Data and Sample pages read: counts, breakdowns, filtered pages
"""
