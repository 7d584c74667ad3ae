"""Business templates (billboard, discount banner, product shot).

A template run is a parent job whose steps are jobs of their own; the job engine
in ``generation`` already carries ``Job.parent`` for them.
"""
