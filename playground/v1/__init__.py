"""The OpenAI-compatible endpoint at /v1/: its own ASGI handler with only the middleware an
API-key endpoint needs (handler), request parsing and OpenAI-shaped errors (params), response
bodies and chunks (responses), the per-key rate limit (ratelimit), the views, OpenAI's
grader endpoints (graders) and its Files API over our datasets (files).

Imports: playground (models, deployments, inference), rewards.openai_graders, jobs.datasets,
rftconsole helpers and API keys.
"""
