"""Judging (RESET step 3): every candidate scored per aspect by LLM and metric judges.

* ``base.py``           the Judge protocol, JudgeItem and Judgment, the shard schema
* ``metric_judges.py``  offline judges (ROUGE-L, token F1, knowledge precision, instruction proxy)
* ``llm_judge.py``      the LLM judge (its config, rubric prompts, verdict parsing, cost)
* ``engine.py``         the async OpenAI-compatible engine: concurrency, retries, cache, ledger
* ``rubrics.py``        versioned rubrics stored in the database
* ``worker.py``         the job a worker process runs (never opens the database)
* ``launch.py``         app side: plan the items, estimate, start and follow a judging job
* ``queries.py``        what the Judge page and the CLI read about judgments
"""
