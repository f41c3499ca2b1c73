"""Sampling (RESET step 2): candidates for every selected example under a grid of settings.

* ``config.py``     ModelSpec (which model, which engine) and SampleSelection (which examples)
* ``settings.py``   the DecodingSetting value object and grids
* ``base.py``       the Generator protocol, requests and results
* ``transformers_backend.py``, ``vllm_backend.py``, ``openai_backend.py``  the engines
* ``worker.py``     the job a worker process runs (never opens the database)
* ``data_parallel.py``  vLLM data parallel: one worker process per DP rank and GPU slice
* ``launch.py``     app side: plan, validate, start, follow and resume a sampling job
* ``queries.py``    what the Sample page and the CLI read: jobs and their candidates

The engines import torch, vLLM and openai inside their methods, so importing this
package stays light.

>>> sorted(GENERATORS)
['openai', 'transformers', 'vllm']
"""

from __future__ import annotations

from reset_core.sampling.base import Generator
from reset_core.sampling.openai_backend import OpenAIGenerator
from reset_core.sampling.transformers_backend import TransformersGenerator
from reset_core.sampling.vllm_backend import VLLMGenerator

#: engine name -> its Generator implementation (constructed with a ModelSpec).
GENERATORS: dict[str, type[Generator]] = {
    "transformers": TransformersGenerator,
    "vllm": VLLMGenerator,
    "openai": OpenAIGenerator,
}
