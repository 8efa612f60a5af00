"""The operator docs name what the code serves: every metric family the worker renders is in
the metrics reference of docs/operating.md, and the docker README lists every deployment file."""

from __future__ import annotations

import re

from tests.docker import DOCKER, REPO


def _metrics_reference() -> str:
    """The metrics section of docs/operating.md: from its heading to the next one."""
    text = (REPO / "docs" / "operating.md").read_text()
    start = text.index("\n## Metrics\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def test_every_metric_family_is_documented():
    from worker.metrics import Metrics

    families = set(re.findall(r"^# TYPE (\S+) ", Metrics().render(), re.M))
    assert families
    documented = set(re.findall(r"^\| `(docmill_\w+)` \|", _metrics_reference(), re.M))
    assert documented == families


def test_docker_readme_lists_every_deployment_file():
    listed = (DOCKER / "README.md").read_text()
    files = [p for p in DOCKER.rglob("*") if p.is_file() and p.name != "README.md"]
    for path in files:
        assert f"`{path.relative_to(DOCKER)}`" in listed, path
