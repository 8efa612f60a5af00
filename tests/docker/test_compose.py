"""docker/compose.yaml as Debian's docker-compose resolves it (`config` needs no engine): it
validates, refuses to start without its passwords, starts services in the right order, and
Prometheus scrapes where the workers serve metrics."""

from __future__ import annotations

import yaml

from tests.docker import COMPOSE_ENV, DOCKER, compose_config, resolved_compose

DOCMILL_IMAGES = ("docmill-worker", "docmill-producer", "docmill-converter")


def test_config_validates():
    proc = compose_config()
    assert proc.returncode == 0, proc.stderr
    assert set(yaml.safe_load(proc.stdout)["services"]) >= {
        "redis", "minio", "buckets", "samples", "converter", "worker", "worker-gpu", "producer", "prometheus"}


def test_passwords_are_required_not_defaulted():
    for missing in COMPOSE_ENV:
        env = {k: v for k, v in COMPOSE_ENV.items() if k != missing}
        proc = compose_config(env=env)
        assert proc.returncode != 0 and missing in proc.stderr, proc.stderr


def test_redis_requires_the_password_the_workers_use():
    services = resolved_compose()["services"]
    password = COMPOSE_ENV["REDIS_PASSWORD"]
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == password
    for name in ("worker", "worker-gpu", "producer"):
        assert services[name]["environment"]["DOCMILL_BROKER_URL"] == f"redis://:{password}@redis:6379/0"


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
    services = resolved_compose()["services"]
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


def test_docmill_services_use_the_repo_dockerfiles():
    for name, service in resolved_compose()["services"].items():
        if "build" in service:
            dockerfile = service["build"]["dockerfile"]
            assert (DOCKER.parent / dockerfile).is_file(), name
            assert service["image"].split(":")[0] == "docmill-" + dockerfile.split("/")[-1].split(".")[0]


def test_converter_publishes_where_workers_and_producer_read():
    services = resolved_compose()["services"]
    publish = services["converter"]["command"]
    dest = publish[publish.index("--publish") + 1]
    models = f"{dest}/pp-ocrv4-ch"
    produce = services["producer"]["command"]
    assert produce[produce.index("--models") + 1] == models
    for worker in ("worker", "worker-gpu"):
        assert services[worker]["environment"]["DOCMILL_MODELS"] == models


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
