"""A template run's outputs each carry their share of the run's cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from generation.models import Image
from templates_app.models import RunStatus
from tests.conftest import Persona
from tests.templates_app.test_runs import emulators, start, templates  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


async def test_each_output_carries_its_share_of_the_runs_cost(
        owner: Persona, templates: None, emulators: Any) -> None:  # noqa: F811
    run = await start(owner, "discount-banner",
                      formats=["medium-rectangle", "leaderboard"])
    assert run.status == RunStatus.COMPLETED, run.error_message
    total = run.job.cost
    assert total is not None and total > 0
    costs = [image.cost async for image in Image.objects.filter(run_output__run=run)]
    assert len(costs) == 2
    assert costs == [(total / 2).quantize(Decimal("0.000001"))] * 2
