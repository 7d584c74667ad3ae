"""Process-wide settings Brenia's long-running processes make for themselves."""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)


def open_files_raise() -> int:
    """Raise this process's soft limit of open files to its hard limit; returns the limit.

    A worker keeps one connection open per job it follows (fal's status stream) and the
    web process one per WebSocket client: the usual soft limit of 1,024 would cap both
    far below what they can hold. The hard limit is the operator's (``ulimit -Hn``,
    ``LimitNOFILE``, compose's ``ulimits``); it is never exceeded.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # some sandboxes refuse; run with what there is
        logger.warning("could not raise the open-files limit from %s", soft)
        return soft
    return target
