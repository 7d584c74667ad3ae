"""The deploy files cannot rot: Procfile, compose.yaml and the Dockerfile run commands
that exist, with options those commands accept, and set only variables Brenia reads.

Each ``manage.py`` command line goes through that command's own Django parser, each
daphne line through daphne's; the variables a Brenia container is given must be read
by ``brenia/settings.py`` (or by a library it configures), and compose's defaults must
pass ``manage.py check --deploy``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from daphne.cli import CommandLineInterface
from django.core.management import get_commands, load_command_class
from django.core.management.base import CommandError
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
# Variables a Procfile platform sets for the process (never Brenia's to read).
PLATFORM_VARIABLES = {"PORT"}
# Read from the environment by a library Brenia configures, not by settings.py: boto3
# (under django-storages) takes its credentials from there. The README lists them.
LIBRARY_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def settings_variables() -> set[str]:
    """Every variable name brenia/settings.py passes to one of its env_* readers."""
    tree = ast.parse((ROOT / "brenia" / "settings.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id.startswith("env_") and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


BRENIA_VARIABLES = settings_variables() | LIBRARY_VARIABLES


def check_command(argv: list[str]) -> str:
    """Fail unless ``argv`` runs a real program of Brenia's with options it accepts;
    returns the program (``daphne`` or ``manage.py <command>``)."""
    while argv and ASSIGNMENT.match(argv[0]):  # VAR=value python manage.py …
        name = argv.pop(0).split("=", 1)[0]
        assert name in BRENIA_VARIABLES, f"{name} is not a variable Brenia reads"
    if argv[0] == "daphne":
        try:
            parsed = CommandLineInterface().parser.parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"daphne does not take {shlex.join(argv)}")
        assert parsed.application == "brenia.asgi:application"
        # -v 0: daphne's plain-text access lines would break the JSON log stream.
        assert parsed.verbosity == 0, shlex.join(argv)
        return "daphne"
    assert argv[:2] == ["python", "manage.py"], f"not a command of Brenia's: {argv}"
    name = argv[2]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    command = load_command_class(commands[name], name)
    try:
        command.create_parser("manage.py", name).parse_args(argv[3:])
    except CommandError as exc:
        pytest.fail(f"manage.py {name} does not take {argv[3:]}: {exc}")
    return f"manage.py {name}"


def check_script(argv: list[str]) -> list[str]:
    """A command, or ``sh -c "a && b"``: each part checked; the programs run, in order."""
    if argv[:2] == ["sh", "-c"]:
        return [check_command(shlex.split(part)) for part in argv[2].split("&&")]
    return [check_command(list(argv))]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {m.group(1): m.group(2) for line in lines if (m := PROCFILE_LINE.match(line))}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def brenia_services() -> dict[str, dict[str, Any]]:
    """The services that run Brenia's image (the others are PostgreSQL, Redis, MinIO)."""
    return {name: service for name, service in compose()["services"].items()
            if service.get("build") == "."}


# --- Procfile ---------------------------------------------------------------------------------

def test_the_procfile_runs_release_web_and_worker_with_real_commands() -> None:
    processes = procfile()
    assert set(processes) == {"release", "web", "worker"}
    for kind, line in processes.items():
        used = set(re.findall(r"\$\{?([A-Z_]+)", line))
        assert used <= PLATFORM_VARIABLES, (kind, used)
        # The platform expands $PORT before the command runs; any port stands in for it.
        argv = ["sh", "-c", line] if "&&" in line else shlex.split(line)
        programs = check_script([part.replace("$PORT", "8000") for part in argv])
        assert programs == {"release": ["manage.py migrate", "manage.py bootstrap"],
                            "web": ["daphne"], "worker": ["manage.py worker"]}[kind]


# --- compose.yaml -----------------------------------------------------------------------------

def test_compose_runs_what_the_procfile_runs() -> None:
    services = brenia_services()
    assert set(services) == {"release", "web", "worker"}
    processes = procfile()
    for name, service in services.items():
        compose_line = service["command"][2] if service["command"][:2] == ["sh", "-c"] \
            else shlex.join(service["command"])
        assert compose_line == processes[name].replace("$PORT", "8000"), name
        check_script(service["command"])


def test_compose_gives_brenia_only_variables_it_reads() -> None:
    for name, service in brenia_services().items():
        unknown = set(service["environment"]) - BRENIA_VARIABLES
        assert not unknown, f"{name} sets variables Brenia never reads: {sorted(unknown)}"
        assert service["environment"]["BRENIA_JOBS"] == "procrastinate"


def test_compose_services_wait_for_what_they_need() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on a missing service {needed}"
    assert services["web"]["depends_on"]["release"]["condition"] == \
        "service_completed_successfully"
    assert services["worker"]["depends_on"]["release"]["condition"] == \
        "service_completed_successfully"
    probe = " ".join(services["web"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/[a-z]+)", probe)
    assert path and resolve(path.group(1)).url_name == "readyz"


def interpolate(value: str, given: dict[str, str]) -> str:
    """compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with ``given`` as the .env."""
    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in given:
            return given[name]
        assert op != ":?", f"{name} is required: {rest}"
        return rest if op == ":-" else ""

    return re.sub(r"\$\{([A-Z_]+)(:-|:\?)?([^}]*)\}", one, value)


def test_compose_defaults_pass_the_deploy_checklist(tmp_path: Path) -> None:
    """What a Brenia container gets from compose, with only SECRET_KEY in .env, is a
    configuration settings.py takes and ``check --deploy`` passes (no database needed)."""
    dotenv = {"SECRET_KEY": "compose-test-" + "k" * 50}
    environment = {name: interpolate(str(value), dotenv)
                   for name, value in brenia_services()["web"]["environment"].items()}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "DJANGO_", "BRENIA_", "DATABASE_URL", "REDIS_URL",
                                "AWS_", "MEDIA_ROOT", "LOG_"))}
    env.update(environment)
    env["BRENIA_DATA_DIR"] = str(tmp_path)
    env["MEDIA_ROOT"] = str(tmp_path / "media")  # /media is the container's volume
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # The one expected warning: no HTTPS redirect, since compose has no TLS proxy.
    warnings = set(re.findall(r"\(security\.(W\d+)\)", result.stdout + result.stderr))
    assert warnings <= {"W008"}, result.stdout + result.stderr


# --- Dockerfile -------------------------------------------------------------------------------

def test_the_dockerfile_runs_real_commands() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = [line.split(None, 1) for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    cmd = [rest for word, rest in instructions if word == "CMD"]
    assert len(cmd) == 1
    assert check_script(json.loads(cmd[0])) == ["daphne"]
    runs = [part for word, rest in instructions if word == "RUN"
            for part in rest.split("&&") if "manage.py" in part]
    assert [check_command(shlex.split(part)) for part in runs] == ["manage.py collectstatic"]
    assert any(word == "COPY" and "requirements.txt" in rest and "constraints.txt" in rest
               for word, rest in instructions)
