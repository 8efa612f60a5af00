"""Fault hooks for the chaos tests, kept out of the operator's settings (`docmill config`
never shows them): DOCMILL_FAULT_CRASH_ON_SOURCE makes a worker process die, as a segfault
in a decoder would, when it starts an item whose source contains that text;
DOCMILL_FAULT_DIE_AFTER_TAKE=1 makes the worker die right after it moves a task off the queue,
before kombu records it (the window worker/kombu_taking.py closes)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from pydantic import ConfigDict

from docmill.environment import EnvironmentModel
from docmill.messages import TaskItem
from docmill.settings import Settings
from worker.items import Admit, DecodedItem, Loader

log = logging.getLogger(__name__)


class FaultSettings(EnvironmentModel):
    env_prefix = "DOCMILL_FAULT_"
    model_config = ConfigDict(extra="ignore")

    crash_on_source: str | None = None
    die_after_take: bool = False


def with_faults(load: Loader, faults: FaultSettings | None = None) -> Loader:
    """`load`, or `load` behind the crash hook when a fault is configured."""
    faults = faults or FaultSettings()
    poison = faults.crash_on_source
    if not poison:
        return load

    def crashing_load(item: TaskItem, settings: Settings, admit: Admit, data: bytes | None = None) -> DecodedItem:
        if poison in item.src:
            log.error("fault injection: dying on %s", item.src)
            os._exit(137)
        return load(item, settings, admit, data)

    return crashing_load


def die_after_take(faults: FaultSettings | None = None) -> Callable[[str], None] | None:
    """The taker's hook that kills the worker between its take and kombu's record, when set."""
    if not (faults or FaultSettings()).die_after_take:
        return None

    def die(payload: str) -> None:
        log.error("fault injection: dying after taking a task off the queue")
        os._exit(137)

    return die
