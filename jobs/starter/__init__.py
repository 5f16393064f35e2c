"""The starter model and demo tasks, built offline by our own code: synthetic tasks in the
Bedrock format (tasks), a byte-level BPE tokenizer (tokenizer), a supervised warm-up (warmup),
the artifacts on disk (artifacts) and their registration for the admin (register).

Imports: torch and transformers for building; jobs.datasets, jobs.registry and rewards.services
for registering.
"""
