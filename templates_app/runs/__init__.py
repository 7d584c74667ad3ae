"""Template runs once started: the engine that drives their steps (``engine``) and the
composition of each format (``composing``). Importing the package registers the run
tasks, their recovery step and the job-finished hook."""

from templates_app.runs.composing import template_run_recompose
from templates_app.runs.engine import template_run_advance_submit, template_run_retry

__all__ = ["template_run_advance_submit", "template_run_recompose", "template_run_retry"]
