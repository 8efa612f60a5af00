"""docker/compose.yaml as Debian's docker-compose resolves it (`config` needs no engine): it
validates, keeps every secret in a file rather than the environment, starts services in the
right order, and Prometheus scrapes where the workers serve metrics. docker/compose.test.yaml,
`make deploy-test`'s override, swaps only the services other registries give."""

from __future__ import annotations

import re

import yaml

from tests.docker import (COMPOSE_ENV, DOCKER, SECRET_NAMES, compose_config, instructions, resolved_compose,
                          resolved_test_compose)

DOCMILL_IMAGES = ("docmill-worker", "docmill-producer", "docmill-converter")
DOCMILL_SECRETS = ["DOCMILL_BROKER_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def test_config_validates():
    proc = compose_config()
    assert proc.returncode == 0, proc.stderr
    assert set(yaml.safe_load(proc.stdout)["services"]) >= {
        "redis", "minio", "buckets", "samples", "converter", "worker", "worker-gpu", "producer", "prometheus"}


def _secrets(service: dict) -> list[str]:
    return [s["source"] if isinstance(s, dict) else s for s in service.get("secrets", [])]


def test_secrets_are_files_in_the_secrets_folder():
    top = resolved_compose()["secrets"]
    assert sorted(top) == sorted(SECRET_NAMES)
    for name, spec in top.items():
        assert spec == {"file": f"{COMPOSE_ENV['DOCMILL_SECRETS']}/{name}"}, name


def test_no_secret_is_in_the_environment():
    """`docker inspect` shows a container's environment: no password, key or broker URL in it."""
    for name, service in resolved_compose()["services"].items():
        for var, value in service.get("environment", {}).items():
            if var.endswith("_FILE"):  # names a file in /run/secrets, not the secret
                assert value in SECRET_NAMES, (name, var, value)
                continue
            assert var not in SECRET_NAMES and not re.search(r"PASSWORD|SECRET|BROKER_URL", var), (name, var)
            assert "@" not in str(value), (name, var, value)


def test_docmill_services_read_their_secrets_as_files():
    services = resolved_compose()["services"]
    for name in ("converter", "worker", "worker-gpu", "producer"):
        assert _secrets(services[name]) == DOCMILL_SECRETS, name


def test_redis_requires_the_password_from_its_secret():
    services = resolved_compose()["services"]
    redis = services["redis"]
    assert _secrets(redis) == ["REDIS_PASSWORD"]
    command = " ".join(redis["command"])
    assert "--requirepass" in command and "cat /run/secrets/REDIS_PASSWORD" in command
    assert "/run/secrets/REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])


def test_minio_and_buckets_read_the_s3_keys_from_their_secrets():
    services = resolved_compose()["services"]
    assert services["minio"]["environment"] == {"MINIO_ROOT_USER_FILE": "AWS_ACCESS_KEY_ID",
                                                "MINIO_ROOT_PASSWORD_FILE": "AWS_SECRET_ACCESS_KEY"}
    for name in ("minio", "buckets"):
        assert _secrets(services[name]) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], name


def _conditions(service: dict) -> dict[str, str]:
    return {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}


def test_start_order():
    services = resolved_compose()["services"]
    assert _conditions(services["buckets"]) == {"minio": "service_healthy",
                                                "samples": "service_completed_successfully"}
    assert _conditions(services["converter"]) == {"buckets": "service_completed_successfully"}
    for worker in ("worker", "worker-gpu"):
        assert _conditions(services[worker]) == {"redis": "service_healthy",
                                                 "converter": "service_completed_successfully"}
    assert _conditions(services["producer"]) == {"redis": "service_healthy",
                                                 "buckets": "service_completed_successfully",
                                                 "converter": "service_completed_successfully"}


def test_every_service_waited_on_for_health_has_a_healthcheck():
    for services in (resolved_compose()["services"], resolved_test_compose()["services"]):
        for name, service in services.items():
            for dep, condition in _conditions(service).items():
                if condition == "service_healthy":
                    assert services[dep].get("healthcheck", {}).get("test"), f"{name} waits on {dep}"
        for name in ("worker", "worker-gpu"):
            assert services[name]["healthcheck"]["test"] == ["CMD", "docmill", "worker", "--check"]


def test_gpu_worker_reserves_a_gpu_only_in_its_profile():
    services = resolved_compose()["services"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["environment"]["DOCMILL_DEVICE"] == "cuda"
    assert "profiles" not in services["worker"] and "deploy" not in services["worker"]
    assert services["worker"]["environment"]["DOCMILL_DEVICE"] == "cpu"
    assert gpu["image"] == services["worker"]["image"], "one worker image for GPU and CPU hosts"


def _arg_default(dockerfile: str, name: str) -> str:
    for ins in instructions(DOCKER.parent / dockerfile):
        if ins.keyword == "ARG" and ins.args.startswith(f"{name}="):
            return ins.args.partition("=")[2].strip('"')
    raise AssertionError(f"{dockerfile} has no ARG {name}=")


def test_docmill_services_use_the_repo_dockerfiles_and_their_base():
    for name, service in resolved_compose()["services"].items():
        if "build" in service:
            dockerfile = service["build"]["dockerfile"]
            assert (DOCKER.parent / dockerfile).is_file(), name
            assert service["image"].split(":")[0] == "docmill-" + dockerfile.split("/")[-1].split(".")[0]
            assert service["build"]["args"]["BASE_IMAGE"] == _arg_default(dockerfile, "BASE_IMAGE"), name


def test_converter_publishes_the_default_set_where_workers_and_producer_read():
    from docmill.settings import DEFAULT_MODEL_SET

    services = resolved_compose()["services"]
    publish = services["converter"]["command"]
    preset = publish[publish.index("--preset") + 1]
    assert preset == DEFAULT_MODEL_SET
    assert services["converter"]["build"]["args"]["BAKE_MODELS"] == preset, "publishes with no registry"
    models = f"{publish[publish.index('--publish') + 1]}/{preset}"
    produce = services["producer"]["command"]
    assert produce[produce.index("--models") + 1] == models
    for name in ("worker", "worker-gpu", "converter", "producer"):
        assert services[name]["environment"]["DOCMILL_MODELS"] == models


def test_prometheus_scrapes_the_workers_metrics_port():
    services = resolved_compose()["services"]
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert set(sd["names"]) == {"worker", "worker-gpu"}
    for worker in sd["names"]:
        command = services[worker]["command"]
        assert int(command[command.index("--metrics-port") + 1]) == sd["port"]
        assert str(sd["port"]) in [str(p) for p in services[worker]["expose"]]


# --- the deploy-test override ----------------------------------------------------------------

def test_the_override_swaps_only_what_other_registries_give():
    base, test = resolved_compose()["services"], resolved_test_compose()["services"]
    assert set(test) == set(base)
    swapped = {name for name in base if test[name].get("image") != base[name].get("image")}
    assert swapped == {"redis", "minio", "buckets", "prometheus"}
    for name in ("redis", "minio", "prometheus"):
        assert test[name]["image"] == f"docmill-test-{'s3' if name == 'minio' else name}:dev"
    assert test["buckets"]["image"] == base["producer"]["image"]
    for name, service in test.items():
        assert service["image"].startswith("docmill-"), f"{name}: {service['image']} needs a registry"
    for name in ("converter", "worker", "producer", "samples"):
        assert test[name]["command"] == base[name]["command"], name
    for name in ("redis", "prometheus"):  # the stand-ins run compose.yaml's own command and check
        assert test[name]["command"] == base[name]["command"] and test[name]["healthcheck"] == base[name]["healthcheck"]


def test_the_override_stand_ins_are_built_from_the_test_dockerfile():
    targets = {ins.args.split()[-1] for ins in instructions(DOCKER / "test" / "services.Dockerfile")
               if ins.keyword == "FROM"}
    assert targets == {"redis", "s3", "prometheus"}
    text = (DOCKER.parent / "scripts" / "deploy_test.py").read_text()
    assert 'TEST_IMAGES = ("redis", "s3", "prometheus")' in text


def test_the_fault_run_keeps_the_hour_long_visibility_timeout():
    """The killed worker's tasks must come back through heartbeats, as in production, not
    through a visibility timeout shortened for the test."""
    from docmill.settings import Settings

    for compose in (resolved_test_compose(), resolved_compose()):
        environment = compose["services"]["worker"].get("environment") or {}
        assert "DOCMILL_VISIBILITY_TIMEOUT_S" not in environment
        assert "DOCMILL_WORKER_LOST_AFTER_S" not in environment
    assert Settings().worker_lost_after_s < 60 < Settings().visibility_timeout_s


