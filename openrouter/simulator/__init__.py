"""A faithful local OpenRouter for tests, ``make run`` without a key, and benchmarks.

In-process::

    app = create_app(SimulatorConfig(ttft=0, tps=0))
    sim = app.state.sim          # SimState: set_fault(), update_config(), upsert_model(), stats(), reset()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/api/v1")

(``httpx.ASGITransport`` buffers a whole response; use a real socket to see timing or disconnects.)
As a server: ``python -m openrouter.simulator --port 8011`` (control endpoints under ``/_sim``).

What a model answers is a function of the request (model + messages), so tests can assert on it:

* plain prompts get 30–60 tokens of deterministic sentences (``reply_tokens`` or the fault
  ``tokens=N`` changes that); ``max_tokens`` cuts with ``finish_reason: "length"``;
* ``echo: <text>`` as the last user message answers ``<text>`` exactly;
* with ``tools`` offered, a last user message naming a tool, or holding ``call:name({"a": 1})``,
  answers with tool calls; after a ``role: "tool"`` message the answer is "The result is <content>.";
* models marked ``always_reasons`` in ``models.json`` (DeepSeek R1, QwQ) stream ``reasoning`` first;
  other reasoning-capable models do when the request asks for ``reasoning`` (``replies``: effort,
  max_tokens, exclude, ``reasoning_details`` in the provider's format, signatures checked when sent back).

The rest of OpenRouter's surface, each billed as OpenRouter bills it (``charges``): prompt caching
(``caching``), ``file`` parts and the ``file-parser`` plugin (``files``), the web search server tool
(``search``), image output (``images``), provider routing with ``max_price`` and ``:nitro`` / ``:floor``
over each model's ``endpoints`` (``routing``), ``/embeddings`` (``embeddings``), the stateless
``/responses`` API (``responses_api``) and response caching with ``X-OpenRouter-Cache: true``
(``response_cache``: an identical request that succeeded is replayed at no cost).

Like OpenRouter, a non-streamed reply answers 200 with its headers (``X-Generation-Id``) at once, then
whitespace while it is generated, then the JSON. Every generation is billed once when it ends: a stream
the client closes for what was sent (``cancelled``; in full on providers that can't be stopped: Bedrock,
Google, Groq, Mistral), a non-streamed one in full even if its client left,
and one that ends in an error or with no completion token and no finish reason not at all (bar its search
and OCR fees).
``GET /_sim/billed`` lists what was billed, with exact costs, for tests to compare their ledger with.

Faults (errors, drops, stalls, malformed chunks, slow starts): see ``openrouter.simulator.faults``.
"""

from openrouter.simulator.app import create_app
from openrouter.simulator.state import SimState, SimulatorConfig

__all__ = ["SimState", "SimulatorConfig", "create_app"]
