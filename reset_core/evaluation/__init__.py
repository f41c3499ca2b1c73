"""Evaluation: checkpoints compared on held-out test sets, on equal terms.

The last stage of the loop (MTL → sample → judge → select → curate → train → evaluate).
An evaluation answers one frozen test set with every chosen checkpoint under one fixed
decoding setting (greedy by default) and scores the answers with one frozen judge
panel. It runs as ordinary sampling and judging jobs, so there is no second pipeline:
its answers are candidates, its scores judgments, and it resumes like they do.

    config.py       EvalConfig: checkpoints, test set, decoding, panel (help text)
    launch.py       create, advance (start the next job) and run evaluations headless
    queries.py      what the Evaluate page and the CLI read about evaluations
    compare.py      per aspect, kind and split: means, paired deltas, CIs, paired test
    charts.py       plotly figures of a comparison: the plane, paired-delta forests
    ifeval.py       IFEval accuracy (prompt/instruction level, strict/loose)
    benchmarks.py   built-in offline test sets (IFEval's 541 prompts)
    report.py       one self-contained HTML file and Markdown tables
    experiments.py  the paper's experiments as recipes (data, not code)
    loop.py         where a user stands on the MTL → RESET path, and the lineage graph
"""
