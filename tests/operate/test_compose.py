"""``docker-compose.yml`` never starts open: Redis requires a password every service uses, and
Flower asks for basic auth. Its services run, as composed, from what the Dockerfile puts in the
image in ``tests/operate/test_image.py`` (Docker may not be installed)."""

from __future__ import annotations

import secrets

import pytest

from tests.deploy.compose_file import IMAGE_SERVICES, SERVICES, WORKERS, interpolate

REDIS_PASSWORD = secrets.token_hex(16)


def test_redis_requires_a_password_that_every_service_uses() -> None:
    command = SERVICES["redis"]["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    for name in IMAGE_SERVICES:
        url = SERVICES[name]["environment"]["ORCHESTRATOR_REDIS_URL"]
        env = {"REDIS_PASSWORD": REDIS_PASSWORD}
        assert interpolate(url, env) == f"redis://:{REDIS_PASSWORD}@redis:6379/0", name
        with pytest.raises(LookupError, match="set REDIS_PASSWORD"):
            interpolate(url, {})


def test_flower_requires_basic_auth_and_holds_no_provider_key() -> None:
    environment = SERVICES["flower"]["environment"]
    with pytest.raises(LookupError, match="set FLOWER_BASIC_AUTH=user:password"):
        interpolate(environment["FLOWER_BASIC_AUTH"], {})
    assert "FLOWER_UNAUTHENTICATED_API" not in environment
    assert not [name for name in environment if name.endswith("_API_KEY")]
    for name in WORKERS:  # the keys are for the workers
        assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= set(SERVICES[name]["environment"])


@pytest.mark.parametrize("name", WORKERS)
def test_nothing_in_a_worker_service_is_fixed_per_container(name: str) -> None:
    """``--scale`` starts copies of the service: a container name, host port, hostname or
    Celery node name would be the same in every copy."""
    service = SERVICES[name]
    assert not {"container_name", "hostname", "ports"} & set(service)
    assert not {"-n", "--hostname"} & set(service["command"])
    assert not [arg for arg in service["command"] if arg.startswith(("-n=", "--hostname="))]


def test_every_worker_service_serves_the_same_tool_modules() -> None:
    """Agents workers offer and check the tools, tools workers run the remote ones: a module
    missing from either fails its calls."""
    env = {"ORCHESTRATOR_TOOL_MODULES": "mytools"}
    for name in WORKERS:
        modules = SERVICES[name]["environment"]["ORCHESTRATOR_TOOL_MODULES"]
        assert interpolate(modules, env) == "mytools", name
