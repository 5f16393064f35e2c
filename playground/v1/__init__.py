"""The OpenAI-compatible endpoint at /v1/: its own ASGI handler with only the middleware an
API-key endpoint needs (handler), request parsing and OpenAI-shaped errors (params), response
bodies and chunks (responses), the per-key rate limit (ratelimit), and the views.

Imports: playground (models, deployments, inference), rftconsole helpers and API keys.
"""
