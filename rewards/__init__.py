"""Rewards: reward functions with immutable versions (models, services, validation), the one
entry point that scores answers (scoring), the shared types (types), the test bench, templates
(library, template_files/), and the pages and REST API.

Subpackages: `graders/` (built-in graders), `judge/` (model as judge), `sandbox/` (the only place
user code runs), `openai_graders/` (OpenAI's grader JSON, run with the three).

Imports: jobs.models, jobs.datasets (formats, storage) and jobs.registry.loading, rftconsole
helpers. Never jobs.training or jobs.actions: training imports rewards, not the other way.
"""
