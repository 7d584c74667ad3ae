"""Property-based run against the live API: no 5xx, and every response as documented.

Schemathesis generates valid and invalid requests for every operation from the
OpenAPI document the live server serves (registry-driven bodies included).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_breaks_the_api_or_its_schema(live_brenia: LiveBrenia, owner: Persona,
                                                 mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{live_brenia.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {owner.key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    statuses: list[int] = []

    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case: Any) -> None:
            response = case.call(base_url=live_brenia.url, headers=headers, timeout=30)
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

        check()
    assert len(statuses) >= 5 * len(operations)
    # Valid requests succeed somewhere; invalid ones are turned away with a 4xx.
    if mode == GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in statuses)
    else:
        assert any(400 <= status < 500 for status in statuses)
