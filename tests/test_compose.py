"""compose.yaml cannot be run here (no Docker), so what can be checked by reading it is:
the four services, pinned images, a health check each, an Elasticsearch major equal to the
client's, and that every INVOICE_* variable it sets is one the service actually reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from verify.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"elasticsearch", "redis", "verify", "reconciler"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _tag(image: str) -> str | None:
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _client_major() -> int:
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'"elasticsearch(?:\[[^\]]*\])?>=(\d+)\.[^"]*,<(\d+)"', text)
    assert found, "pyproject.toml pins elasticsearch as >=X.Y,<X+1"
    low, high = int(found[1]), int(found[2])
    assert high == low + 1, "the client pin spans exactly one major"
    return low


def test_the_four_services_exist(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(compose: dict[str, Any], name: str) -> None:
    image = compose["services"][name]["image"]
    tag = _tag(image)
    assert tag, f"{name}: {image} has no explicit tag"
    assert tag != "latest"
    assert re.search(r"\d", tag), f"{name}: {tag} names no version"


def test_dockerfile_base_images_are_pinned() -> None:
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert bases
    for base in bases:
        tag = _tag(base)
        assert tag, base
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{base}: pin a full version"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    assert check["test"]
    assert not check.get("disable")


def test_elasticsearch_major_matches_the_client(compose: dict[str, Any]) -> None:
    tag = _tag(compose["services"]["elasticsearch"]["image"])
    assert tag is not None
    assert int(tag.split(".")[0]) == _client_major()


def test_redis_persists_its_data(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly yes" in redis["command"]
    assert any(str(v).endswith(":/data") for v in redis["volumes"])


def test_service_and_reconciler_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["verify"]["command"] == ["invoice-verify", "serve"]
    assert services["reconciler"]["command"] == ["invoice-verify", "reconcile", "--loop",
                                                 "--heartbeat", "/data/reconciler.heartbeat"]
    assert services["verify"]["build"]
    assert services["reconciler"]["image"] == services["verify"]["image"]
    env = _environment(services["verify"])
    assert env["INVOICE_HOST"] == "0.0.0.0"
    assert env["INVOICE_ES_URL"].startswith("http://elasticsearch:")
    assert env["INVOICE_REDIS_URL"].startswith("redis://redis:")
    assert env["INVOICE_DATA_DIR"]


class _RecordingEnviron(dict[str, str]):
    """An environment that remembers which names were read (a real dict, not a mock)."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def _invoice_variables(compose: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if key.startswith("INVOICE_"):
                yield name, key, value


def test_every_invoice_variable_is_read_by_settings(compose: dict[str, Any]) -> None:
    for service in ("verify", "reconciler"):
        env = {k: v for name, k, v in _invoice_variables(compose) if name == service}
        recording = _RecordingEnviron(env)
        Settings.from_env(recording)  # also proves the values parse
        unread = set(env) - recording.read
        assert not unread, f"{service}: Settings.from_env never reads {sorted(unread)}"
