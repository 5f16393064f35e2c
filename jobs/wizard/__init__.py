"""The job creation wizard: each step's questions and checks (steps), its views and URLs. A
finished draft becomes a job through jobs.actions.create_job.

Imports: jobs core (models, actions), datasets, training (hyperparameters, preflight), rewards.
"""
