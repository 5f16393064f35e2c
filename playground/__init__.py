"""Serving: deployments (one click from a registered model), the inference pool, the
OpenAI-compatible endpoint (`v1/`), invocation logs (also imported from Bedrock's log records)
and datasets built from them, and the side-by-side playground (sessions, its websocket and pages).

Subpackages: `inference/` (the pool, streaming, generation) and `v1/` (the /v1/ endpoint).

Imports: jobs.models, jobs.datasets, jobs.registry.loading, rewards (scoring, types), rftconsole
helpers.
"""
