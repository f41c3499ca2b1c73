"""Judging: the Judge protocol, LLM and metric judges, the engine, and the worker job.

Start with ``base.py`` (the protocol), then ``metric_judges.py`` (offline),
``llm_judge.py`` + ``engine.py`` (OpenAI-compatible endpoints) and ``worker.py``.
"""
