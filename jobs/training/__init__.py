"""Training: the pre-flight checks a job passes before it is created (preflight), the
hyperparameters and their bounds (hyperparameters), and what a `gpu` worker runs: turn datasets
into prompts (data), score with the reward (reward_bridge), run TRL's GRPOTrainer (engine) with
our callback (callback), validate (validation, evaluation) and publish the result (output).

A job of several processes (numProcesses > 1): the worker's task starts torchrun (launch,
torchrun) and settles the job from how the group ended; each rank (rank → rank_job) runs the
same engine, rank 0 alone writing (group); distributed holds the trainer settings and the
accelerate config of each strategy, facts what the worker offers and how the job was started.

Imports: jobs core (models, actions, events), datasets, registry, rewards. engine, callback and
evaluation import torch, so only the trainer and `manage.py train` import them.
"""
