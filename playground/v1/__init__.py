"""The OpenAI-compatible endpoint at /v1/: its own ASGI handler with only the middleware an
API-key endpoint needs (handler), request parsing and OpenAI-shaped errors (params), response
bodies and chunks (responses), the per-key rate limit (ratelimit), the views, OpenAI's
grader endpoints (graders), its Files API over our datasets (files) and its fine-tuning jobs API
over console jobs (fine_tuning; ft_create, ft_objects, ft_events, ft_hyperparameters, ft_models).

Imports: playground (models, deployments, inference), rewards.openai_graders, jobs.datasets,
jobs (models, actions, training's hyperparameters and preflight), rewards (models, services),
rftconsole helpers and API keys.
"""
