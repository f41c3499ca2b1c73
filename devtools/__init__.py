"""Development tools: stand-ins for tests, benches and demos, never part of the product.

``openai_standin`` is a local OpenAI-compatible HTTP server with fault injection
(``python -m devtools.openai_standin --port 8000``). It is not installed with the
``reset-studio`` package; run it from a checkout.
"""
