"""The OpenAI-compatible endpoint at /v1/: its own ASGI handler with only the middleware an
API-key endpoint needs (handler), request parsing and OpenAI-shaped errors (params), response
bodies and chunks (responses), the per-key rate limit (ratelimit), the views, and OpenAI's
grader endpoints (graders).

Imports: playground (models, deployments, inference), rewards.openai_graders, rftconsole helpers
and API keys.
"""
