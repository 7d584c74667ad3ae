"""The result cache: the same seeded request again, within a while, costs nothing.

A request is cacheable when its result is reproducible: the provider arguments hold a
fixed ``seed``. Its key is a hash of what was actually sent — the model's slug and
version label and the normalised provider arguments, as stored on the job — so a
registry edit (a new version) or any changed input makes a new key. A new job whose
key matches a job completed less than ``BRENIA_RESULT_CACHE_SECONDS`` ago is born
completed with that job's images (the same content-addressed files, new rows of its
own) and its text, at a cost of zero, and says so (``cache_hit``, ``cached_from``);
``generation.jobs.services`` does that finishing, this module only finds the result.
The caller opts out per request (``"cache": false``); ``BRENIA_RESULT_CACHE_SECONDS=0``
turns the cache off.

The cache is the jobs table itself (an indexed ``cache_key`` column): every process
sees the same entries, nothing extra to evict, and an entry disappears with its job.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from brenia import metrics
from generation.models import AIModel, Image, Job, JobStatus

# What a hit costs, at the ledger's precision.
FREE = Decimal("0.000000")


def cache_key(*, model: AIModel, arguments: dict[str, Any], output: str) -> str:
    """The request's cache key; empty when it has no fixed seed (not reproducible)."""
    if not isinstance(arguments, dict) or arguments.get("seed") is None:
        return ""
    payload = json.dumps({"model": model.slug, "version": model.version_label,
                          "output": output, "arguments": arguments},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def cached_source(key: str) -> Job | None:
    """The newest completed job with ``key`` inside the time-to-live that has a result
    to give (images, or text for a text job); None for a miss or a disabled cache."""
    ttl = settings.BRENIA_RESULT_CACHE_SECONDS
    if not key or ttl <= 0:
        return None
    since = timezone.now() - timedelta(seconds=ttl)
    has_images = Exists(Image.objects.filter(job=OuterRef("pk")))
    source = (Job.objects.filter(cache_key=key, status=JobStatus.COMPLETED,
                                 finished_at__gte=since)
              .filter(Q(has_images) | ~Q(result={}))
              .order_by("-finished_at").first())
    metrics.cache_lookup(hit=source is not None)
    return source

