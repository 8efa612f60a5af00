"""docker/k8s/*.yaml against JSON-schema fragments of the Kubernetes and KEDA APIs (written
down here from the API references: no kubeconform is packaged on PyPI, npm or Debian, and its
schemas would need the network), then the references between the manifests."""

from __future__ import annotations

import jsonschema
import pytest

from tests.docker import k8s_documents

STR = {"type": "string"}
STR_MAP = {"type": "object", "additionalProperties": STR}
QUANTITY = {"type": ["string", "integer"]}
META = {"type": "object", "required": ["name"], "properties": {"name": STR, "labels": STR_MAP,
                                                                "annotations": STR_MAP}}
SECRET_REF = {"type": "object", "required": ["name", "key"], "additionalProperties": False,
              "properties": {"name": STR, "key": STR}}
ENV_VAR = {"type": "object", "required": ["name"], "additionalProperties": False,
           "properties": {"name": STR, "value": STR,
                          "valueFrom": {"type": "object", "additionalProperties": False,
                                        "properties": {"secretKeyRef": SECRET_REF}}}}
EXEC_PROBE = {"type": "object", "required": ["exec"],
              "properties": {"exec": {"type": "object", "required": ["command"],
                                      "properties": {"command": {"type": "array", "items": STR}}},
                             "periodSeconds": {"type": "integer"}, "timeoutSeconds": {"type": "integer"},
                             "failureThreshold": {"type": "integer"}}}
CONTAINER = {
    "type": "object", "required": ["name", "image"], "additionalProperties": False,
    "properties": {
        "name": STR, "image": STR,
        "args": {"type": "array", "items": STR}, "command": {"type": "array", "items": STR},
        "env": {"type": "array", "items": ENV_VAR},
        "envFrom": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
            "configMapRef": {"type": "object", "required": ["name"]},
            "secretRef": {"type": "object", "required": ["name"]}}}},
        "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"],
                                             "properties": {"containerPort": {"type": "integer"}, "name": STR}}},
        "resources": {"type": "object", "additionalProperties": False, "properties": {
            "requests": {"type": "object", "additionalProperties": QUANTITY},
            "limits": {"type": "object", "additionalProperties": QUANTITY}}},
        "startupProbe": EXEC_PROBE, "livenessProbe": EXEC_PROBE, "readinessProbe": EXEC_PROBE,
        "securityContext": {"type": "object"},
        "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"]}},
    },
}
POD_SPEC = {
    "type": "object", "required": ["containers"],
    "properties": {
        "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
        "restartPolicy": {"enum": ["Always", "OnFailure", "Never"]},
        "terminationGracePeriodSeconds": {"type": "integer"},
        "securityContext": {"type": "object", "properties": {"runAsNonRoot": {"const": True},
                                                             "runAsUser": {"type": "integer", "minimum": 1}},
                            "required": ["runAsNonRoot", "runAsUser"]},
        "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    },
}
TEMPLATE = {"type": "object", "required": ["spec"], "properties": {"metadata": {"type": "object"},
                                                                    "spec": POD_SPEC}}


def _kind(api: str, kind: str, spec: dict | None = None, **extra: dict) -> dict:
    props = {"apiVersion": {"const": api}, "kind": {"const": kind}, "metadata": META, **extra}
    if spec is not None:
        props["spec"] = spec
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", *extra, *(["spec"] if spec else [])],
            "properties": props}


SCHEMAS = {
    "Secret": _kind("v1", "Secret", None, stringData=STR_MAP, type={"const": "Opaque"}),
    "ConfigMap": _kind("v1", "ConfigMap", None, data=STR_MAP),
    "Deployment": _kind("apps/v1", "Deployment", {
        "type": "object", "required": ["selector", "template"],
        "properties": {"replicas": {"type": "integer"}, "template": TEMPLATE,
                       "selector": {"type": "object", "required": ["matchLabels"],
                                    "properties": {"matchLabels": STR_MAP}}}}),
    "Job": _kind("batch/v1", "Job", {
        "type": "object", "required": ["template"],
        "properties": {"backoffLimit": {"type": "integer"}, "ttlSecondsAfterFinished": {"type": "integer"},
                       "template": {**TEMPLATE, "properties": {**TEMPLATE["properties"], "spec": {
                           **POD_SPEC, "required": ["containers", "restartPolicy"],
                           "properties": {**POD_SPEC["properties"],
                                          "restartPolicy": {"enum": ["OnFailure", "Never"]}}}}}}}),
    "ScaledObject": _kind("keda.sh/v1alpha1", "ScaledObject", {
        "type": "object", "required": ["scaleTargetRef", "triggers"],
        "properties": {
            "scaleTargetRef": {"type": "object", "required": ["name"]},
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer"}, "cooldownPeriod": {"type": "integer"},
            "advanced": {"type": "object"},
            "triggers": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["type", "metadata"],
                "properties": {"type": STR, "metadata": STR_MAP,
                               "authenticationRef": {"type": "object", "required": ["name"]}}}}}}),
    "TriggerAuthentication": _kind("keda.sh/v1alpha1", "TriggerAuthentication", {
        "type": "object", "properties": {"secretTargetRef": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name", "key"]}}}}),
}

DOCS = k8s_documents()


def _one(kind: str) -> dict:
    found = [d for d in DOCS if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_matches_its_schema(doc):
    assert doc["kind"] in SCHEMAS, f"no schema for {doc['kind']}"
    jsonschema.validate(doc, SCHEMAS[doc["kind"]])


def test_the_schemas_can_fail():
    deployment = _one("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMAS["Deployment"])


def test_the_set_is_complete():
    assert sorted(d["kind"] for d in DOCS) == sorted(
        ["Secret", "ConfigMap", "Deployment", "ScaledObject", "TriggerAuthentication", "Job", "Job"])
    args = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"][0]
            for d in DOCS if d["kind"] == "Job"}
    assert sorted(args.values()) == ["models", "produce"]


def _containers() -> list[dict]:
    return [c for d in DOCS if d["kind"] in ("Deployment", "Job") for c in d["spec"]["template"]["spec"]["containers"]]


def _pods() -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in DOCS if d["kind"] in ("Deployment", "Job")]


def test_every_secret_and_config_reference_exists():
    secret, config = _one("Secret"), _one("ConfigMap")
    for pod in _pods():
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == secret["metadata"]["name"]
                for item in volume["secret"]["items"]:
                    assert item["key"] in secret["stringData"], item
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == config["metadata"]["name"]
    for ref in _one("TriggerAuthentication")["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_secrets_are_files_not_environment():
    """As in compose: each pod mounts the keys it needs as files named like the variable the
    image reads them into, readable by the pod's group, in /run/secrets/docmill (beside the
    service account's /run/secrets/kubernetes.io, not over it); no secret is in `env`."""
    from tests.docker import SECRET_NAMES

    assert sorted(_one("Secret")["stringData"]) == sorted(SECRET_NAMES)
    assert not set(SECRET_NAMES) & set(_one("ConfigMap")["data"])
    for pod in _pods():
        (volume,) = [v for v in pod["volumes"] if "secret" in v]
        items = volume["secret"]["items"]
        assert all(item["key"] == item["path"] and item["key"] in SECRET_NAMES for item in items), items
        assert "REDIS_PASSWORD" not in [item["key"] for item in items], "only KEDA needs Redis's own password"
        assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 10001
        for container in pod["containers"]:
            mount = {"name": volume["name"], "mountPath": "/run/secrets/docmill", "readOnly": True}
            assert mount in container["volumeMounts"]
            assert _one("ConfigMap")["data"]["DOCMILL_SECRETS_DIR"] == mount["mountPath"]
            assert all("valueFrom" not in var and var["name"] not in SECRET_NAMES for var in container.get("env", []))


def test_images_and_arguments_are_the_ones_deploy_test_runs():
    """The manifests name the images `make deploy-test` builds (pushed to a registry) and run
    the commands of the compose services it starts (the producer without its demo --force)."""
    from tests.docker import resolved_compose

    services = resolved_compose()["services"]
    for doc in DOCS:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        service = {"worker": "worker-gpu", "converter": "converter", "producer": "producer"}[container["name"]]
        expected = services[service]["command"]
        if service == "producer":
            expected = [arg for arg in expected if arg != "--force"]
        assert container["args"] == expected, service
        image = container["image"].rsplit("/", 1)[-1].split(":")[0]
        assert image == services[service]["image"].split(":")[0], container["image"]
    models = _one("ConfigMap")["data"]["DOCMILL_MODELS"]
    assert models == services["worker"]["environment"]["DOCMILL_MODELS"]


def test_worker_gets_a_gpu_and_checks_itself():
    deployment = _one("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "DOCMILL_DEVICE", "value": "cuda"} in container["env"]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["docmill", "worker", "--check"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()


def test_keda_scales_the_worker_on_the_queue_it_consumes():
    scaled = _one("ScaledObject")
    deployment = _one("Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["authenticationRef"]["name"] == _one("TriggerAuthentication")["metadata"]["name"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    queue = args[args.index("--queue") + 1] if "--queue" in args else "docmill"
    assert trigger["metadata"]["listName"] == queue
    assert int(trigger["metadata"]["listLength"]) >= 1


def test_keda_comment_names_the_settings_that_keep_scaling_honest():
    """The prefetch caveat is documented next to the trigger, and the settings it names are
    the ones the worker really runs with."""
    from pathlib import Path

    from docmill.settings import Settings
    from worker.app import make_app

    text = (Path(__file__).resolve().parents[2] / "docker/k8s/keda-scaledobject.yaml").read_text()
    for phrase in ("worker_prefetch_multiplier=1", "task_acks_late", "unacked"):
        assert phrase in text
    conf = make_app(Settings()).conf
    assert conf.worker_prefetch_multiplier == 1 and conf.task_acks_late is True
