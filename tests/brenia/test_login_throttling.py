"""Log-in throttling (django-axes) on the site's and the admin's log-in, and password rules.

Driven through the real log-in forms with Django's test client: five wrong passwords
for one username from one address, and the next try is refused with a 429 page that
says when to come back, whatever password it carries.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.utils import timezone

from tests.conftest import Persona, make_persona

pytestmark = pytest.mark.django_db

LOGINS = ["/accounts/login/", "/admin/login/"]
LIMIT = 5


@pytest.fixture
def operator(seeded: None) -> Persona:
    """Staff, so that the admin's log-in takes the right password too."""
    return make_persona("operator", staff=True)


def log_in(client: Client, url: str, username: str, password: str) -> object:
    return client.post(url, {"username": username, "password": password})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, url: str, username: str, times: int) -> list[int]:
    return [log_in(client, url, username, "not-the-password").status_code  # type: ignore[attr-defined]
            for _ in range(times)]


@pytest.mark.parametrize("url", LOGINS)
def test_after_five_wrong_passwords_even_the_right_one_is_refused_with_a_page_saying_when(
        operator: Persona, url: str) -> None:
    client = Client()
    statuses = fail(client, url, "operator", LIMIT)
    assert statuses[:LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, with its error
    refused = log_in(client, url, "operator", operator.password)
    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert refused["Retry-After"] == "900"  # type: ignore[index]
    page = refused.content.decode()  # type: ignore[attr-defined]
    assert "Too many log-in attempts" in page
    assert "Try again in 15 minutes" in page
    assert not logged_in(client)


@pytest.mark.django_db(transaction=True)
async def test_daphne_s_async_path_serves_the_same_lockout_page(operator: Persona) -> None:
    """Under ASGI the middleware runs async and axes calls the page differently."""
    client = AsyncClient()
    for _ in range(LIMIT):
        await client.post("/admin/login/", {"username": "operator", "password": "wrong"})
    refused = await client.post("/admin/login/", {"username": "operator",
                                                  "password": operator.password})
    assert refused.status_code == 429
    assert "Try again in 15 minutes" in refused.content.decode()


def test_the_lock_is_per_username_and_address(operator: Persona, owner: Persona) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    fail(attacker, "/accounts/login/", "operator", LIMIT)
    assert log_in(attacker, "/accounts/login/", "operator",
                  operator.password).status_code == 429  # type: ignore[attr-defined]

    # Another user from the same address …
    neighbour = Client(REMOTE_ADDR="203.0.113.9")
    log_in(neighbour, "/accounts/login/", "owner", owner.password)
    assert logged_in(neighbour)
    # … and the same user from elsewhere still log in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    log_in(elsewhere, "/accounts/login/", "operator", operator.password)
    assert logged_in(elsewhere)


def test_api_keys_are_not_throttled_by_failed_logins(owner: Persona) -> None:
    fail(Client(), "/accounts/login/", "owner", LIMIT + 1)
    assert owner.api().get_json("/api/jobs").status_code == 200


def test_a_success_clears_the_count(operator: Persona) -> None:
    client = Client()
    fail(client, "/accounts/login/", "operator", LIMIT - 1)
    log_in(client, "/accounts/login/", "operator", operator.password)
    assert logged_in(client)

    again = Client()
    assert fail(again, "/accounts/login/", "operator", LIMIT - 1) == [200] * (LIMIT - 1)
    log_in(again, "/accounts/login/", "operator", operator.password)
    assert logged_in(again)


def test_once_the_cool_off_has_passed_the_right_password_logs_in(operator: Persona) -> None:
    client = Client()
    fail(client, "/admin/login/", "operator", LIMIT)
    # The failures were counted 16 minutes ago, as far as axes can tell.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    log_in(client, "/admin/login/", "operator", operator.password)
    assert logged_in(client)


def test_an_operator_can_lift_a_lock_at_once(operator: Persona) -> None:
    client = Client()
    fail(client, "/accounts/login/", "operator", LIMIT)
    call_command("axes_reset_username", "operator", stdout=io.StringIO())
    log_in(client, "/accounts/login/", "operator", operator.password)
    assert logged_in(client)


@pytest.mark.parametrize(("password", "problem"), [
    ("Xy7#q", "too short"),
    ("password123", "too common"),
    ("4815162342", "entirely numeric"),
])
def test_the_admin_refuses_weak_passwords_for_new_users(operator: Persona, password: str,
                                                         problem: str) -> None:
    console = Client()
    console.force_login(operator.user)
    response = console.post("/admin/accounts/user/add/", {
        "username": "newcomer", "password1": password, "password2": password,
        "usable_password": "true"})
    assert response.status_code == 200  # the form again, not a redirect to the new user
    assert problem in response.content.decode()
    assert not type(operator.user).objects.filter(username="newcomer").exists()
