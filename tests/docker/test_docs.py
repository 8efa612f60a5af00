"""The operator docs name what the code serves: every metric family the worker renders is in
README's metrics reference, and the docker README lists every deployment file."""

from __future__ import annotations

import re

from tests.docker import DOCKER, REPO


def _operate() -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index("\n## Operate\n"):text.index("\n## Layout\n")]


def test_every_metric_family_is_documented():
    from worker.metrics import Metrics

    families = set(re.findall(r"^# TYPE (\S+) ", Metrics().render(), re.M))
    assert families
    documented = set(re.findall(r"^\| `(docmill_\w+)` \|", _operate(), re.M))
    assert documented == families


def test_docker_readme_lists_every_deployment_file():
    listed = (DOCKER / "README.md").read_text()
    files = [p for p in DOCKER.rglob("*") if p.is_file() and p.name != "README.md"]
    for path in files:
        assert f"`{path.relative_to(DOCKER)}`" in listed, path
