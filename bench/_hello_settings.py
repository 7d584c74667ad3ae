"""Brenia's settings plus a hello-world API, for ``bench/submissions.py`` only.

The bench serves Brenia from daphne with ``bench/`` on ``PYTHONPATH`` and
``DJANGO_SETTINGS_MODULE=_hello_settings``: every setting (middleware, database,
channel layer, jobs) is Brenia's own; only the URLconf adds ``/bench/hello``.
"""

from brenia.settings import *  # noqa: F403

ROOT_URLCONF = "_hello_urls"
