"""Review: people veto, force, rank and score candidates on top of the judges' picks.

* ``events.py``  the append-only override events, the state derived from them, and
  the effective picks every later stage uses
* ``queue.py``   the review queue: filters, sorting and paging in SQL, the example view
* ``links.py``   links from the analytics pages into the queue (a disagreement, a region)
* ``text.py``    safe rendering of model text, unsupported-span highlighting
"""
