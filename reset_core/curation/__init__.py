"""Curation (RESET step 5): frozen curated sets of the picks, and TRL-ready exports.

* ``config.py``   CurationSpec and the presets (RESET, RESET-S, MTL references)
* ``sets.py``     freezing a set from a selection (overrides applied) or from references
* ``export.py``   JSONL, Parquet or ``datasets`` folders with a manifest beside them
* ``queries.py``  the sets, their manifests, what the MTL set can draw on
"""
