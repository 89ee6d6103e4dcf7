"""compose.yaml cannot be run here (no Docker), so what can be checked by reading it is:
the five services, pinned images, a health check each, an Elasticsearch major equal to the
client's, every INVOICE_* variable it sets is one the service actually reads, `verify` as
two or more replicas reached only through the nginx balancer (deploy/nginx.conf), which
retries idempotent requests on another replica, the reconciler able to reach callbacks and
built by compose, and a build context (.dockerignore) holding only what the Dockerfile
copies. The balancer's retry policy itself runs in tests/chaos/test_balancer.py."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from verify.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"elasticsearch", "redis", "verify", "balancer", "reconciler"}


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
    for name in ("verify", "reconciler"):  # built here, never pulled from a registry
        assert services[name]["build"] == ".", name
        assert services[name]["pull_policy"] == "build", name
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


def _nginx_conf(compose: dict[str, Any]) -> str:
    mounts = compose["services"]["balancer"]["volumes"]
    (source,) = [m.split(":")[0] for m in mounts if ":/etc/nginx/nginx.conf" in m]
    return (ROOT / source).read_text()


def _directives(conf: str, name: str) -> list[list[str]]:
    """Every `name arg ...;` of the nginx configuration, comments left out."""
    text = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    return [found.split() for found in re.findall(rf"(?:^|[{{;\s]){name}\s+([^;{{]*);",
                                                  text)]


def test_verify_runs_as_replicas_behind_the_balancer(compose: dict[str, Any]) -> None:
    services = compose["services"]
    verify, balancer = services["verify"], services["balancer"]
    assert verify["deploy"]["replicas"] >= 2
    assert "ports" not in verify, "replicas are reached through the balancer only"
    assert "container_name" not in verify, "a fixed name allows one replica only"
    assert balancer["image"].startswith("nginx:"), "the official nginx image"
    assert balancer["ports"] == ["8080:8080"]
    assert balancer["depends_on"]["verify"] == {"condition": "service_healthy"}
    assert set(balancer["networks"]) <= {"public"}, "the balancer never sees the backend"


def test_the_balancer_retries_idempotent_requests_on_another_replica(
        compose: dict[str, Any]) -> None:
    conf = _nginx_conf(compose)
    port = _environment(compose["services"]["verify"])["INVOICE_PORT"]
    (server,) = _directives(conf, "server")
    assert server[0] == f"verify:{port}"
    assert "resolve" in server, "replicas found through Docker's DNS as they come and go"
    assert _directives(conf, "resolver")[0][0] == "127.0.0.11"
    assert _directives(conf, "proxy_pass") == [["http://verify"]]
    (retry,) = _directives(conf, "proxy_next_upstream")
    assert {"error", "timeout", "http_502"} <= set(retry)
    assert "non_idempotent" not in retry, "a POST is never sent twice"
    (tries,) = _directives(conf, "proxy_next_upstream_tries")
    assert int(tries[0]) >= 2
    assert _directives(conf, "proxy_request_buffering") in ([], [["on"]]), \
        "a request is kept whole so that it can be sent again"


def test_the_reconciler_can_reach_callbacks(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    reconciler = compose["services"]["reconciler"]
    outside = [n for n in reconciler["networks"] if not networks[n].get("internal")]
    assert outside, "on the internal network only, every callback fails"
    assert "backend" in reconciler["networks"]


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (excludes, pattern): the last rule matching a path decides."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else
                        "[^/]" if part == "?" else re.escape(part)
                        for part in re.split(r"(\*\*|\*|\?)", pattern))
        rules.append((not keep, re.compile(regex)))
    return rules


def _in_context(path: str, rules: Sequence[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker sends `path` with the build context (a rule matching one of its
    folders matches it too)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for excludes, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = excludes
    return not excluded


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    rules = _ignore_rules()
    for path in (".venv/bin/python", "data/admin.key", "data/invoices.sqlite3", ".git/HEAD",
                 ".mypy_cache/3.11/x.json", ".pytest_cache/v/x", ".ruff_cache/x",
                 ".hypothesis/x", "tests/conftest.py", "bench/lookup.py",
                 "verify/__pycache__/app.cpython-311.pyc", "invoice_verify.egg-info/PKG-INFO",
                 "compose.yaml"):
        assert not _in_context(path, rules), f"{path} would be sent with the build context"
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [words[1:-1] for words in (line.split() for line in dockerfile.splitlines())
              if words[:1] == ["COPY"] and not words[1].startswith("--from")]
    sources = [source.rstrip("/") for group in copied for source in group]
    assert sources
    for source in sources:
        inside = f"{source}/x.py" if (ROOT / source).is_dir() else source
        assert _in_context(inside, rules), f"the Dockerfile copies {source}: keep it"


def test_the_reconciler_sees_every_replica_journal(compose: dict[str, Any]) -> None:
    """Each replica claims a journal slot in the data volume (journal.sqlite3,
    journal-2.sqlite3, ...); the reconciler drains every slot no live replica holds
    (tests/verify/test_journal_slots.py), so it mounts the same volume at the same data
    directory, and its command is the one that looks through all the slots."""
    services = compose["services"]
    data_dir = _environment(services["verify"])["INVOICE_DATA_DIR"]
    assert _environment(services["reconciler"])["INVOICE_DATA_DIR"] == data_dir

    def data_volumes(service: dict[str, Any]) -> set[str]:
        mounts = (str(v).split(":") for v in service.get("volumes", []))
        return {m[0] for m in mounts if len(m) > 1 and m[1] == data_dir}

    shared = data_volumes(services["verify"])
    assert shared, "the replicas' data directory is a volume"
    assert shared == data_volumes(services["reconciler"])
    assert shared <= set(compose["volumes"]), "a named volume, not a replica's own path"
    assert "--slot" not in services["reconciler"]["command"]
