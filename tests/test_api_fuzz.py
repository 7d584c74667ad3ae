"""Schemathesis, every check, against the live API and the OpenAPI document it serves.

No request breaks the API (no 5xx), and the document and the API agree both ways:
statuses, bodies, content types and headers as documented; bodies the document
calls valid accepted, bodies it calls invalid refused; auth enforced; undeclared
methods answered 405. The registry's per-model request bodies are fuzzed like the
rest, since the server builds them into the document it serves.

The test runs the ``schemathesis`` CLI in a child process, as a developer would by
hand (see ``schemathesis_command``). This module is also that run's hooks file
(``SCHEMATHESIS_HOOKS``, loaded there it registers ``map_case`` below), so its top
level imports nothing that needs Django or the fixtures.

By hand, against ``make run``::

    SCHEMATHESIS_HOOKS=tests/test_api_fuzz.py PYTHONPATH=. .venv/bin/schemathesis run \
        http://127.0.0.1:8000/api/openapi.json --checks all --max-examples 25 \
        --seed 20260131 --generation-database none --continue-on-failure --workers 1 \
        --header "Authorization: Bearer $KEY"

(with BRENIA_WEBHOOK_ALLOWED_HOSTS=hooks.brenia-fuzz.example in the server's environment).

Settings per operation are in ``tests/fuzz/schemathesis.toml`` (why, beside each): a
template run is quoted (``dry_run``) rather than started, and the run and job
operations get a real run's id and its job's, the image operations its output's, the
brand kit operations a kit's, and the key revoke a spare key's (never the run's own key).

Exclusions: none among the documented operations. ``POST /api/webhooks/fal`` is not
in the document (``include_in_schema=False``): fal signs each call with its own
Ed25519 key, so a generated request can only ever be refused with 401, which
tests/generation/test_fal_webhooks.py already covers with real signatures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import schemathesis

from generation.registry.validation import HTTP_URL_REGEX, IMAGE_URL_REGEX, URI_REGEX

if TYPE_CHECKING:
    from generation.emulators.server import EmulatorThread
    from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e]
ROOT = Path(__file__).resolve().parent.parent

# Reproducible: one seed, no example database. BRENIA_FUZZ_SEED explores another.
SEED = int(os.environ.get("BRENIA_FUZZ_SEED", "20260131"))
MAX_EXAMPLES = 25
# The wall-clock bound of the whole schemathesis run: about two minutes for 25
# operations on two busy cores, with room for a slower machine.
RUN_TIMEOUT = 240

# Whether a URL's host is public is for the network to say, not the document: the
# API refuses internal addresses (422 url_not_allowed: "http://0" is 0.0.0.0) and
# resolves hosts, and DNS here is offline and now and then takes 5 s to say so. So
# every valid http(s) URL a case carries is moved onto a host the API takes without
# asking DNS, keeping the rest of it (syntax is still fuzzed; the document's patterns
# drive the invalid cases): webhook targets onto a name the server under test
# allow-lists, fetched inputs onto an IANA anycast address that counts as public.
WEBHOOK_HOST = "hooks.brenia-fuzz.example"
INPUT_HOST = "192.0.0.9"
_URL = re.compile("|".join(f"(?:{regex})" for regex in
                           (URI_REGEX, IMAGE_URL_REGEX, HTTP_URL_REGEX)))


def _public(url: str, host: str) -> str:
    """``url`` on ``host``; a long one keeps its length (it may sit at a maxLength)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not _URL.fullmatch(url):
        return url
    prefix = f"{parts.scheme}://{host}"
    rest = urlunsplit(parts._replace(scheme="", netloc="")) or "/"
    if len(url) <= 200:
        return prefix + rest
    rest = rest[:len(url) - len(prefix)]
    while len(rest) > 1 and not _URL.fullmatch(prefix + rest):  # cut inside a %XX
        rest = rest[:-1]
    return prefix + rest + "a" * (len(url) - len(prefix) - len(rest))


def _with_public_urls(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        if _is_image_data(value):
            return TINY_PNG
        return _public(value, WEBHOOK_HOST if key == "webhook_url" else INPUT_HOST)
    if isinstance(value, dict):
        return {name: _with_public_urls(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_with_public_urls(item, key) for item in value]
    return value


# Likewise, whether base64 bytes decode as a picture is for the decoder to say: a logo
# the document calls valid (a data URI of an image type) carries a real picture, and so
# does an image data URI anywhere else (a model's image input, a template's photo):
# the API decodes each at submit and refuses what is not an image.
LOGO = re.compile(r"data:image/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/]+={0,2}")
TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFElEQVR4"
            "nGM8Iafxn4GBgYGJAQoAH6gCEePspQYAAAAASUVORK5CYII=")


def _is_image_data(value: str) -> bool:
    return value[:11].lower() == "data:image/" and (
        LOGO.fullmatch(value) is not None or _URL.fullmatch(value) is not None)


# And whether a team is one of the caller's, or a username a user's, is for the database
# to say: a team the document calls valid is sent as "" (the caller's own), a username as
# the fixture's spare user's, always added as a member (so the team's only owner stays
# its owner); tests/brenia/test_teams.py covers the rest. What it calls invalid is left.
TEAM = re.compile(r"[-a-zA-Z0-9_]{0,60}")
USERNAME = re.compile(r"[\w.@+-]{1,150}")


def map_case(context: Any, case: Any) -> Any:
    # Invalid cases too: a valid URL in one stays valid (and as long), whatever else
    # in the case is wrong, and no case then waits on DNS.
    case.body = _with_public_urls(case.body)
    if isinstance(case.body, dict) and isinstance(case.body.get("logo"), str) \
            and LOGO.fullmatch(case.body["logo"]):
        case.body["logo"] = TINY_PNG
    if isinstance(case.body, dict) and isinstance(case.body.get("team"), str) \
            and TEAM.fullmatch(case.body["team"]):
        case.body["team"] = ""
    if isinstance(case.body, dict) and isinstance(case.body.get("username"), str) \
            and USERNAME.fullmatch(case.body["username"]):
        case.body["username"] = os.environ.get("BRENIA_FUZZ_MEMBER", "")
        if case.body.get("role") in ("owner", "member"):
            case.body["role"] = "member"
    return case


if os.environ.get("SCHEMATHESIS_HOOKS") == __file__:  # loaded by the run, not by pytest
    schemathesis.hook(map_case)


CONFIG = ROOT / "tests" / "fuzz" / "schemathesis.toml"


def schemathesis_command(url: str, key: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG),
        "run", f"{url}/api/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",
        "--continue-on-failure",
        "--workers", "1",
        "--request-timeout", "30",
        "--header", f"Authorization: Bearer {key}",
        "--no-color",
    ]


@pytest.fixture
def fuzz_env(monkeypatch: pytest.MonkeyPatch, gemini_emulator: EmulatorThread) -> None:
    """The environment live_brenia's server starts with (it copies os.environ)."""
    from tests.conftest import GEMINI_TEST_KEY

    monkeypatch.setenv("BRENIA_WEBHOOK_ALLOWED_HOSTS", WEBHOOK_HOST)
    # ?wait=N holds a request until its job ends: a few seconds keeps the run short.
    monkeypatch.setenv("BRENIA_MAX_WAIT", "2")
    # Text models answer too, from the Gemini emulator.
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_TEST_KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", gemini_emulator.base_url)


@pytest.fixture
def fuzz_run(fuzz_env: None, owner: Persona, live_fal: EmulatorThread,
             monkeypatch: pytest.MonkeyPatch) -> str:
    """The seed templates, and one finished run of the owner's for the run operations;
    its output, rated, for the image operations; a brand kit for the brand kit ones; a
    spare API key for the revoke operation; a team of the owner's for the member ones."""
    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model

    from brenia.accounts.models import Membership, Team, TeamRole
    from brenia.accounts.services import api_key_create
    from generation.jobs.services import image_rate
    from templates_app.brands import brand_kit_save
    from templates_app.services import ad_template_seed, template_run_start
    from tests.conftest import run_background_work

    ad_template_seed()
    run, _ = template_run_start(user=owner.user, slug="discount-banner", formats=["leaderboard"],
                                variables={"discount": "30% OFF", "product_name": "Lemonade"})
    async_to_sync(run_background_work)()
    output = run.outputs.get()
    image_rate(user=owner.user, image_id=output.image_id, score=4)
    monkeypatch.setenv("BRENIA_FUZZ_RUN_ID", str(run.pk))
    monkeypatch.setenv("BRENIA_FUZZ_JOB_ID", str(run.job_id))
    monkeypatch.setenv("BRENIA_FUZZ_IMAGE_ID", str(output.image_id))
    kit = brand_kit_save(owner=owner.user, name="Fuzz kit", palette=["#c2410c", "#1d1d28"])
    monkeypatch.setenv("BRENIA_FUZZ_KIT_ID", str(kit.pk))
    # A key of the owner's for DELETE /api/keys/{key_id} to revoke: never the run's own.
    spare, _ = api_key_create(user=owner.user, name="Fuzz spare key")
    monkeypatch.setenv("BRENIA_FUZZ_API_KEY_ID", str(spare.pk))
    # A team the owner alone owns, for the member operations.
    team = Team.objects.create(name="Fuzz team", slug="fuzz-team")
    Membership.objects.create(team=team, user=owner.user, role=TeamRole.OWNER)
    monkeypatch.setenv("BRENIA_FUZZ_TEAM", team.slug)
    monkeypatch.setenv("BRENIA_FUZZ_OWNER", owner.user.username)
    spare_user = get_user_model().objects.create_user(username="fuzz-member")
    monkeypatch.setenv("BRENIA_FUZZ_MEMBER", spare_user.username)
    return str(run.pk)


@pytest.fixture
def fuzzed_brenia(fuzz_run: str, live_brenia: LiveBrenia) -> LiveBrenia:
    return live_brenia


@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_schemathesis_finds_no_failure_with_every_check(fuzzed_brenia: LiveBrenia,
                                                        owner: Persona, tmp_path: Path) -> None:
    started = time.monotonic()
    # In an empty directory: schemathesis keeps a cache of past crashes under its cwd,
    # and a run must not depend on the ones before it.
    run = subprocess.run(
        schemathesis_command(fuzzed_brenia.url, owner.key), cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": __file__, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    report = run.stdout + run.stderr
    sys.stdout.write(f"{report}\nschemathesis took {time.monotonic() - started:.0f} s\n")
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    cases = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed", report)
    # 0 failures and 0 errors: schemathesis says so in so many words, and exits 0.
    assert run.returncode == 0, report[-20000:]
    assert "No issues found" in report, report[-20000:]
    # Every documented operation ran (none is excluded; see the module docstring).
    assert selected and tested and selected.group(1) == selected.group(2) == tested.group(1)
    assert int(tested.group(1)) >= 11, report[-3000:]
    assert cases and cases.group(1) == cases.group(2), report[-3000:]
    assert int(cases.group(1)) >= 11 * MAX_EXAMPLES, report[-3000:]
