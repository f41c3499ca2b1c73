"""Scoring and selection (RESET steps 4-5): judgments -> one RESET score per candidate -> picks.

* ``config.py``     SelectionConfig: preset, weight w, how judges combine
* ``selection.py``  the RESET score in SQL, ranking, picks, preview and save
* ``queries.py``    stored selections: the latest one (defined once), their picks
"""
