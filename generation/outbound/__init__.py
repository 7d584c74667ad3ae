"""Outgoing webhooks, as a Django app of its own (label ``outbound``).

A finished job that names a ``webhook_url`` is POSTed there, signed and retried.
The app hooks into the job engine at one place, ``job_finished_hook``
(``services``), and runs its deliveries through ``brenia.background`` (``tasks``).
The job engine never imports this package.
"""
