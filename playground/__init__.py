"""Serving: deployments (one click from a registered model), the inference pool, the
OpenAI-compatible endpoint (`v1/`), invocation logs (also imported from Bedrock's log records)
and datasets built from them, the side-by-side playground (sessions, its websocket and pages), and
batch evaluations (`evaluations`, `evaluation_*`, `tasks`: 2 or 3 models or checkpoints answer a
dataset in a `default` worker, scored by a reward).

Subpackages: `inference/` (the pool, streaming, generation) and `v1/` (the /v1/ endpoint).

Imports: jobs.models, jobs.datasets, jobs.registry.loading, jobs.training.hyperparameters, rewards
(scoring, types), rftconsole helpers.
"""
