"""Plans and jobs for the billing tests: real rows, admitted through the real seam."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from brenia.billing.models import Account, Plan
from generation.jobs.admission import job_admit
from generation.models import AIModel, Job

HIGH_RES = {"prompt": "a billboard", "image_size": {"width": 2048, "height": 2048},
            "num_images": 1}
LOW_RES = {"prompt": "a thumbnail", "image_size": {"width": 512, "height": 512},
           "num_images": 1}


def assign_plan(user: Any, **limits: Any) -> Plan:
    """Put ``user`` on a plan of their own with ``limits`` (everything else unlimited)."""
    plan = Plan.objects.create(name=f"plan-{user.pk}-{Plan.objects.count()}", **limits)
    Account.objects.update_or_create(user=user, defaults={"plan": plan})
    return plan


def admitted_job(user: Any, *, arguments: dict[str, Any] | None = None,
                 quote: Decimal = Decimal("1"), slug: str = "flux-schnell",
                 client: str = "", **fields: Any) -> Job:
    """A queued job inserted and admitted in one transaction, as ``job_create`` does,
    but never dispatched: limits are counted against jobs that stay unfinished."""
    model = AIModel.objects.get(slug=slug)
    with transaction.atomic():
        job = Job.objects.create(
            user=user, model=model, model_slug=model.slug, model_version=model.version_label,
            inputs={"prompt": "x"}, provider_arguments=arguments or HIGH_RES,
            estimated_cost=quote, **fields)
        job_admit(job=job, client=client)
    return job
