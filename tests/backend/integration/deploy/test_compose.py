"""The compose files checked without Docker: the Compose Specification's schema, and that the
services agree with each other, with the package's Settings and CLI, and with the files the
Besu generator writes."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

from careledger.cli.allowlist import app as allowlist_app
from careledger.cli.deploy import app as deploy_app
from careledger.cli.main import app as main_app
from careledger.config import Settings
from tests.backend.integration.deploy.conftest import COMPOSE_FILES, ROOT, command_words, load_compose

SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "compose-spec.json").read_text())
PREFIX = "CARELEDGER_"
GENERATED = "./deploy/besu/generated"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _validate(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _gateways(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        n: s
        for n, s in _services(compose).items()
        if command_words(s)[:3] == ["careledger", "gateway", "serve"]
    }


def _option(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _defaults(value: str) -> str:
    """A compose value with ${VAR:-default} replaced by its default (what runs with no .env)."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each short-syntax volume."""
    out = []
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


# --------------------------------------------------------------------------- schema


def test_there_are_compose_files_to_check() -> None:
    assert ROOT / "docker-compose.yml" in COMPOSE_FILES


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    assert _validate(load_compose(path)) == []


def test_schema_catches_what_compose_would_refuse(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["depends_on"]["deploy"]["condition"] = "service_finished"
    broken["services"]["anvil"]["healthcheck"]["intervall"] = "5s"
    errors = _validate(broken)
    assert any("services/gateway/depends_on" in e for e in errors), errors
    assert any("services/anvil/healthcheck" in e for e in errors), errors


# --------------------------------------------------------------------------- the gateway and Settings


def _required_settings() -> set[str]:
    """Settings whose defaults only make sense on a developer's machine: a container must set them."""

    def local(default: object) -> bool:
        if isinstance(default, Path):
            return not default.is_absolute()
        return isinstance(default, str) and (default == "" or "127.0.0.1" in default or "sqlite" in default)

    return {name for name, field in Settings.model_fields.items() if local(field.default)}


def test_required_settings_are_the_ones_a_gateway_cannot_guess() -> None:
    assert _required_settings() == {
        "rpc_url", "deployment_file", "member_address", "endpoint",
        "database_url", "kek_file", "relayer_key_file",
    }  # fmt: skip


def test_gateways_get_only_settings_that_exist_and_every_required_one(compose: dict[str, Any]) -> None:
    gateways = _gateways(compose)
    assert set(gateways) == {"gateway", "clinic-a-gateway", "clinic-b-gateway"}
    for name, service in gateways.items():
        env = service["environment"]
        assert all(k.startswith(PREFIX) for k in env), f"{name}: {sorted(env)}"
        given = {k.removeprefix(PREFIX).lower() for k in env}
        assert given <= set(Settings.model_fields), (
            f"{name} sets unknown settings {given - set(Settings.model_fields)}"
        )
        assert _required_settings() <= given, f"{name} lacks {_required_settings() - given}"


def test_gateway_settings_parse_and_point_at_mounted_files(compose: dict[str, Any]) -> None:
    for name, service in _gateways(compose).items():
        env = {k: _defaults(str(v)) for k, v in service["environment"].items()}
        settings = Settings(**{k.removeprefix(PREFIX).lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        targets = {PurePosixPath(t): ro for _, t, ro in _mounts(service)}
        for field in ("deployment_file", "kek_file", "relayer_key_file"):
            folder = PurePosixPath(str(getattr(settings, field))).parent
            assert folder in targets, f"{name}: {field} is in {folder}, which is not mounted"
        keys_folder = PurePosixPath(str(settings.kek_file)).parent
        assert not targets[keys_folder], f"{name}: KEK rotation writes the key folder; mount it read-write"


def test_gateway_talks_to_services_it_waits_for(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in _gateways(compose).items():
        env = {k: _defaults(str(v)) for k, v in service["environment"].items()}
        db_host = re.match(r"postgresql\+psycopg://[^@]*@([\w-]+):5432/", env["CARELEDGER_DATABASE_URL"])
        assert db_host, f"{name}: {env['CARELEDGER_DATABASE_URL']}"
        assert services[db_host.group(1)]["image"].startswith("postgres:")
        assert service["depends_on"][db_host.group(1)]["condition"] == "service_healthy"
        rpc_host = re.match(r"http://([\w-]+):8545$", env["CARELEDGER_RPC_URL"])
        assert rpc_host and rpc_host.group(1) in services, f"{name}: {env['CARELEDGER_RPC_URL']}"
        deployed_by = [
            d for d, c in service["depends_on"].items() if c["condition"] == "service_completed_successfully"
        ]
        assert len(deployed_by) == 1, f"{name} must wait for the one step that deploys its contracts"
        deployer = services[deployed_by[0]]
        # the deploy step wrote the file the gateway reads, into a volume both mount ...
        assert deployer["environment"]["CARELEDGER_DEPLOYMENT_FILE"] == env["CARELEDGER_DEPLOYMENT_FILE"]
        folder = str(PurePosixPath(env["CARELEDGER_DEPLOYMENT_FILE"]).parent)
        shared = {s for s, t, _ in _mounts(deployer) if t == folder}
        assert shared and shared == {s for s, t, _ in _mounts(service) if t == folder}, name
        # ... on the chain the gateway talks to (another node of it, at most)
        deploy_host = re.match(r"http://([\w-]+):8545$", deployer["environment"]["CARELEDGER_RPC_URL"])
        assert deploy_host and services[deploy_host.group(1)]["image"] == services[rpc_host.group(1)]["image"]


def test_endpoints_registered_by_the_deploy_step_are_the_gateways_own(compose: dict[str, Any]) -> None:
    services = _services(compose)
    pairs = [
        ("gateway", "deploy", "CLINIC_ENDPOINT"),
        ("clinic-a-gateway", "besu-deploy", "CLINIC_A_ENDPOINT"),
        ("clinic-b-gateway", "besu-deploy", "CLINIC_B_ENDPOINT"),
    ]
    for gateway, deployer, variable in pairs:
        registered = services[deployer]["environment"][variable]
        assert services[gateway]["environment"]["CARELEDGER_ENDPOINT"] == registered
        # a loopback endpoint must be where the host reaches the gateway
        published = services[gateway]["ports"][0].split(":")
        assert _defaults(registered) == f"http://{published[0]}:{published[1]}"


# --------------------------------------------------------------------------- ports


def _listens_on(name: str, service: dict[str, Any]) -> int:
    words = command_words(service)
    if service.get("image", "").startswith("hyperledger/besu:"):
        config = tomllib.loads((ROOT / "deploy" / "besu" / "config.toml").read_text())
        return int(config["rpc-http-port"])
    port = _option(words, "--port")
    assert port is not None, f"{name} publishes a port but its command names none"
    return int(port)


def test_published_ports_are_what_the_services_listen_on_and_only_on_loopback(
    compose: dict[str, Any],
) -> None:
    published = []
    for name, service in _services(compose).items():
        for entry in service.get("ports", []):
            host_ip, host_port, container_port = entry.split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {entry} beyond loopback"
            assert int(container_port) == _listens_on(name, service), f"{name}: {entry}"
            published.append(int(host_port))
    assert len(published) == len(set(published)), f"two services publish one host port: {published}"


def test_health_checks_probe_the_port_the_service_listens_on(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if "ports" not in service:
            continue
        probe = " ".join(service["healthcheck"]["test"])
        assert str(_listens_on(name, service)) in probe, f"{name}: {probe}"


# --------------------------------------------------------------------------- volumes, networks, depends_on


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    used = {
        src for s in _services(compose).values() for src, _, _ in _mounts(s) if not src.startswith((".", "/"))
    }
    assert used == set(compose["volumes"])


def test_bind_mounts_and_secrets_are_repository_files_or_generated_ones(
    compose: dict[str, Any], generated: Path
) -> None:
    sources = [src for s in _services(compose).values() for src, _, _ in _mounts(s) if src.startswith(".")]
    sources += [entry["file"] for entry in compose["secrets"].values()]
    for source in sources:
        if source.startswith(GENERATED):
            assert (generated / source.removeprefix(GENERATED + "/")).exists(), (
                f"generate.py writes no {source}"
            )
        else:
            assert (ROOT / source).exists(), f"{source} is not in the repository"


def test_networks_and_secrets_are_declared_and_used(compose: dict[str, Any]) -> None:
    services = _services(compose).values()
    networks = {n for s in services for n in s.get("networks", [])}
    assert networks == set(compose["networks"])
    secrets = {n for s in services for n in s.get("secrets", [])}
    assert secrets == set(compose["secrets"])


def test_depends_on_names_services_that_can_satisfy_the_condition(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} to be healthy: it has no check"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is one-shot: restart must be 'no'"
            # a service that always starts cannot wait for one that only a profile starts
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} depends on profiled {target}"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: image {image} is not pinned"
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?(-[\w.]+)?", tag), f"{name}: {image} has no version tag"


def test_anvil_image_installs_the_anvil_package_json_pins(compose: dict[str, Any]) -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["@foundry-rs/anvil"]
    dockerfile = (ROOT / "deploy" / "anvil" / "Dockerfile").read_text()
    assert f"ARG ANVIL_VERSION={pinned}\n" in dockerfile
    assert compose["services"]["anvil"]["image"].endswith(f":{pinned}")
    for dockerfile_path in (ROOT / "Dockerfile", ROOT / "deploy" / "anvil" / "Dockerfile"):
        for base in re.findall(r"^FROM (\S+)", dockerfile_path.read_text(), re.M):
            assert re.search(r":\d+\.\d+\.\d+", base), f"{dockerfile_path}: base image {base} is not pinned"


# --------------------------------------------------------------------------- commands


def _cli_path(words: list[str]) -> tuple[typer.Typer, list[str]] | None:
    """The Typer app and arguments a compose command runs, if it runs CareLedger's CLI."""
    if words[:1] == ["careledger"]:
        return main_app, words[1:]
    if words[:2] == ["python", "-m"] and words[2].startswith("careledger.cli."):
        apps = {"careledger.cli.allowlist": allowlist_app, "careledger.cli.deploy": deploy_app}
        return apps[words[2]], words[3:]
    return None


def _subcommand(app: typer.Typer, args: list[str]) -> tuple[list[str], list[str]]:
    """Split args into the command path (the words before the first option) and its options."""
    first_option = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    path = args[:first_option]
    for cut in range(len(path), 0, -1):
        if CliRunner().invoke(app, [*path[:cut], "--help"]).exit_code == 0:
            return path[:cut], [a for a in args if a.startswith("-")]
    return [], args


def test_every_careledger_command_in_compose_exists_with_its_options(compose: dict[str, Any]) -> None:
    checked = []
    for name, service in _services(compose).items():
        words = command_words(service)
        if words[:2] == ["sh", "-c"]:
            words = [w for w in re.split(r"\s+", words[2]) if w]
            words = words[words.index("careledger") :] if "careledger" in words else []
        found = _cli_path(words) if words else None
        if found is None:
            continue
        app, args = found
        path, options = _subcommand(app, args)
        assert path, f"{name}: {words} is no CareLedger command"
        usage = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        for option in options:
            assert option.split("=")[0] in usage, f"{name}: {' '.join(path)} has no option {option}"
        checked.append(" ".join(path))
    assert {"gateway serve", "gateway init-keys", "sync"} <= set(checked)


def test_dockerfile_cmd_is_a_real_careledger_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    [cmd] = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    words = json.loads(cmd)
    assert words[0] == "careledger"
    script = Path(sys.executable).parent / "careledger"  # the console script pip installed
    first_option = next(i for i, w in enumerate(words) if w.startswith("-"))
    subcommand = words[1:first_option]
    result = subprocess.run([str(script), *subcommand, "--help"], capture_output=True, text=True, timeout=60,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for option in (w for w in words if w.startswith("--")):
        assert option in result.stdout


def test_scripts_the_image_runs_are_copied_into_it(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, service in _services(compose).items():
        words = command_words(service)
        if words[:1] == ["sh"] and words[1].endswith(".sh"):
            assert (ROOT / words[1]).is_file(), f"{name} runs missing {words[1]}"
            assert re.search(rf"^COPY \S*{re.escape(str(Path(words[1]).parent))}\S* ", dockerfile, re.M), (
                words[1]
            )


# --------------------------------------------------------------------------- the besu profile


def _besu_nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services(compose).items() if re.fullmatch(r"besu-\d", n)}


def test_besu_profile_has_four_validators_and_two_custodians(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert sorted(_besu_nodes(compose)) == ["besu-1", "besu-2", "besu-3", "besu-4"]
    for node in _besu_nodes(compose).values():
        assert node["image"].startswith("hyperledger/besu:")
    # each node's data volume is handed to the besu user before the node starts
    owner = services["besu-volumes"]
    handed = {s for s, _, _ in _mounts(owner)}
    assert handed == {f"{n}-data" for n in _besu_nodes(compose)}
    assert owner["image"] == services["besu-1"]["image"] and owner["user"] == "root"
    for target in (t for _, t, _ in _mounts(owner)):
        assert target in owner["command"][0]
    for name in ("besu-volumes", "besu-deploy", "allowlist-sync", "clinic-a-gateway", "clinic-b-gateway",
                 "clinic-a-postgres", "clinic-b-postgres", *_besu_nodes(compose)):  # fmt: skip
        assert services[name]["profiles"] == ["besu"], name
    # each custodian's database is its own, on a network only its gateway shares
    assert services["clinic-a-postgres"]["networks"] == ["clinic-a"]
    assert services["clinic-b-postgres"]["networks"] == ["clinic-b"]
    assert compose["networks"]["clinic-a"]["internal"] is True


def test_besu_nodes_match_the_generated_network(compose: dict[str, Any], generated: Path) -> None:
    config = tomllib.loads((ROOT / "deploy" / "besu" / "config.toml").read_text())
    enodes = json.loads((generated / "network" / "static-nodes.json").read_text())
    for i, (name, service) in enumerate(sorted(_besu_nodes(compose).items()), start=1):
        mounts = {t: s for s, t, _ in _mounts(service)}
        assert mounts["/network"] == f"{GENERATED}/network"
        assert mounts["/opt/besu/data"] == f"{name}-data"
        # the config file's /network paths are files the generator writes
        for key in ("genesis-file", "static-nodes-file"):
            assert config[key].startswith("/network/")
            assert (generated / "network" / config[key].removeprefix("/network/")).is_file(), key
        # the permissions file lives in the data volume, seeded from the generated one
        assert config["permissions-accounts-config-file"].startswith(config["data-path"] + "/")
        assert "cp /network/permissions_config.toml /opt/besu/data/" in " ".join(command_words(service))
        assert config["permissions-accounts-config-file-enabled"] is True
        assert "PERM" in config["rpc-http-api"]
        # its key is its own secret, and its address is the one static-nodes.json names
        env = service["environment"]
        assert service["secrets"] == [f"besu-node-{i}.key"]
        assert env["BESU_NODE_PRIVATE_KEY_FILE"] == f"/run/secrets/besu-node-{i}.key"
        assert compose["secrets"][f"besu-node-{i}.key"]["file"] == f"{GENERATED}/node-{i}/key"
        ip = service["networks"]["besu"]["ipv4_address"]
        assert env["BESU_P2P_HOST"] == ip
        public = (generated / f"node-{i}" / "key.pub").read_text().removeprefix("0x")
        assert enodes[i - 1] == f"enode://{public}@{ip}:{config['p2p-port']}"


def test_sync_and_deploy_reach_every_validator(compose: dict[str, Any]) -> None:
    services = _services(compose)
    nodes = [f"http://{n}:8545" for n in sorted(_besu_nodes(compose))]
    sync_words = command_words(services["allowlist-sync"])
    assert [w.split("=", 1)[1] for w in sync_words if w.startswith("--node=")] == nodes
    assert services["besu-deploy"]["environment"]["BESU_NODES"].split() == nodes
    assert services["besu-deploy"]["environment"]["ACCOUNTS"] == "/run/secrets"
    script = (ROOT / "deploy" / "besu" / "bootstrap.sh").read_text()
    for secret in services["besu-deploy"]["secrets"]:
        assert f'"$a/{secret}"' in script, f"bootstrap.sh does not use {secret}"
