"""The metered path every model call takes (`gateway.metered`), with its policy, API keys and the
OpenAI-compatible /v1 API. Nothing is re-exported here: Django imports this package while loading apps,
before models exist."""
