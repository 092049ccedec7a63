"""The production compose file, its proxy and its image, checked without Docker (the `docker compose` plugin
is not on the test machines): valid against the Compose Specification's JSON schema (the copy that
check-jsonschema ships), and the properties that make it safe to scale."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
DOCKERFILE = ROOT / "Dockerfile"
BODY_LIMITS = ("ORWEB_MAX_BODY", "ORWEB_MAX_API_BODY", "ORWEB_MAX_ATTACHMENT_BODY", "ORWEB_MAX_BATCH_BODY")


def validate(path: Path) -> subprocess.CompletedProcess:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is a dev dependency"
    return subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def test_the_compose_file_is_valid_against_the_compose_specification():
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_compose_file_that_breaks_the_specification(tmp_path):
    broken = tmp_path / "compose.yml"
    broken.write_text(
        COMPOSE.read_text().replace('    expose: ["8000"]\n', '    expose: ["8000"]\n    replicas: many\n')
    )
    result = validate(broken)
    assert result.returncode != 0
    assert "replicas" in result.stdout + result.stderr


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        if check.get("disable"):
            # Only a one-shot job may go without: it runs to completion and the others wait for that.
            assert service.get("restart") == "no", name
            waiting = [s for s in compose["services"].values() if name in (s.get("depends_on") or {})]
            assert waiting, name
            assert all(s["depends_on"][name]["condition"] == "service_completed_successfully" for s in waiting)
        else:
            assert check.get("test"), f"{name} has no healthcheck"


def test_only_the_proxy_publishes_ports_so_web_and_workers_can_scale(compose):
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"proxy"}
    assert "container_name" not in compose["services"]["web"]


def test_migrations_run_once_in_a_one_shot_service_that_the_app_services_wait_for(compose):
    assert "migrate" in compose["services"]["migrate"]["command"]
    for name in ("web", "worker", "batch-worker", "beat"):
        service = compose["services"][name]
        assert "migrate" not in str(service["command"]), name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_the_web_healthcheck_asks_health(compose):
    assert "/health" in " ".join(compose["services"]["web"]["healthcheck"]["test"])


def caddy_defaults() -> dict[str, int]:
    found = {}
    for name, value in re.findall(r"\{\$(ORWEB_MAX_\w+):(\d+)\}", CADDYFILE.read_text()):
        assert found.setdefault(name, int(value)) == int(value), f"{name} has two defaults in the Caddyfile"
    return found


def test_the_proxy_body_limits_equal_the_apps(compose):
    proxy_env = compose["services"]["proxy"]["environment"]
    compose_defaults = {
        name: int(re.fullmatch(r"\$\{" + name + r":-(\d+)\}", proxy_env[name]).group(1)) for name in BODY_LIMITS
    }
    apps = {name: getattr(settings, name) for name in BODY_LIMITS}
    assert compose_defaults == apps
    assert caddy_defaults() == apps


def test_the_image_runs_as_an_unprivileged_user_and_builds_only_from_our_files_and_the_package_registry():
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.findall(r"^FROM\s+(\S+)", text, re.M) == ["python:3.12-slim"]
    assert not re.search(r"^ADD\s", text, re.M), "ADD can fetch URLs; COPY only copies our files"
    assert not re.search(r"\b(curl|wget|git clone)\b|https?://", text)
    for install in re.findall(r"pip install[^\n&]*", text):
        assert "-c constraints.txt" in install, install


def test_the_image_leaves_out_local_state_and_secrets():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".data", ".env"} <= ignored
