"""Routing: which registry model serves a request, and what happens when it fails.

``policy`` picks a model for a request that names only a kind, ``fallback`` decides by
error class whether a failed job moves on to its model's fallback, and ``breaker`` keeps
one circuit breaker per provider endpoint, shared by every process. The runner
(``generation.jobs.runner``) is their one caller on the job path.
"""
