"""Training: the pre-flight checks a job passes before it is created (preflight), the
hyperparameters and their bounds (hyperparameters), and what a `gpu` worker runs: turn datasets
into prompts (data), score with the reward (reward_bridge), run TRL's GRPOTrainer (engine) with
our callback (callback), evaluate (evaluation) and publish the result (output).

Imports: jobs core (models, actions, events), datasets, registry, rewards. engine, callback and
evaluation import torch, so only the trainer and `manage.py train` import them.
"""
