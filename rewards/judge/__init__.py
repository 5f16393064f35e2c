"""Model as judge (RLAIF): fill in the instructions, ask the judge, read the score out of its
reply (scoring); the two kinds of judge, an OpenAI-compatible endpoint or a local model (clients).

Imports: rewards.types and models, jobs.datasets.formats; clients imports jobs.registry.loading
and rftconsole.security.outbound, and scoring imports clients only when a judge runs.
"""
