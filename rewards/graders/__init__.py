"""Built-in graders, our own code, run in-process: the demo tasks' graders (simple), the
OpenAI-grader-like configurable ones (configurable), the registry by name with `multi`
(registry), and the guarded engines they use for user patterns and schemas (safe_regex: RE2,
safe_schema: no fetching, a step budget) and for embeddings.

Imports: rewards.types at most; embeddings (torch) only when a cosine grader runs.
"""
