"""Analytics: do the judges agree, and where does each candidate sit on the trade-off?

* ``summaries.py``   per-candidate summary tables, refreshed when the data change
* ``agreement.py``   judge-judge, judge-human and human-human agreement with CIs
* ``tradeoff.py``    the instruction/faithfulness plane and its Pareto frontier
* ``decoding.py``    scores and diversity per decoding setting, a suggested grid
* ``judge_bias.py``  do the judges prefer longer answers?
"""
