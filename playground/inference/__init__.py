"""Inference: the pool of loaded models (pool), streaming generation for async callers
(streaming), the generating side that runs `model.generate` (generate), and the plain data both
sides exchange (types).

Imports: jobs.registry.loading and jobs.models; generate imports torch, and streaming imports it
only when a model answers, so the web process stays free of torch until then.
"""
