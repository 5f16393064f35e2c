"""The model registry: look at a model without loading it (inspection), record it (services),
load it and generate with it (loading: torch is imported on first use), download or merge it
(export), and its pages and REST API.

Imports: jobs.models and rftconsole helpers only; rewards and playground import loading from here.
"""
