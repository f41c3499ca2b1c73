"""Scoring and selection (RESET steps 4-5): judgments -> one RESET score per candidate -> picks.

* ``panels.py``        Panel: which judges per aspect, on which scale, combined how;
                       save/list/get/resolve panels (the default one made explicit)
* ``config.py``        SelectionConfig: panel, preset, weight w, model scope, RESET-S
* ``aspect_scores.py`` per-candidate aspect scores under a panel, kept until judgments change
* ``reset_s.py``       RESET-S, defined once (selection and curation both cut with it)
* ``selection.py``     the RESET score, ranking, picks, preview and save
* ``queries.py``       stored selections (the latest one, defined once), panels' SQL,
                       judges' score distributions
"""
