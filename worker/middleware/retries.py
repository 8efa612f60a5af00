"""Task retries: what a failure of a whole task leads to.

Storage trouble that a retry may cure (TransientError) is retried with backoff up to 60 s,
longer than other failures, since object stores do have bad minutes. Any other failure is
retried `task_retries` times; after that the task is given up with `engine_error` results
for its items (worker.task.fail_task), so the job still ends with one result per image
instead of waiting forever for a message Celery would drop.
"""

from __future__ import annotations

from dataclasses import dataclass

from docmill.settings import Settings

BACKOFF_CAP_S = 60
TRANSIENT_FACTOR = 4  # storage trouble may take longer to pass than a bad model load


class TransientError(Exception):
    """Storage trouble worth retrying the whole task for (with backoff)."""


@dataclass(frozen=True)
class Decision:
    retry: bool
    countdown_s: int = 0
    max_retries: int = 0


def final_try(retries: int, settings: Settings) -> bool:
    """On its final try a task records storage failures as results instead of retrying."""
    return retries >= settings.task_retries


def decide(exc: Exception, retries: int, settings: Settings) -> Decision:
    """Retry (with the countdown and the cap Celery should use) or give up."""
    countdown = min(2 ** retries, BACKOFF_CAP_S)
    if isinstance(exc, TransientError):
        return Decision(True, countdown, settings.task_retries * TRANSIENT_FACTOR)
    if retries < settings.task_retries:
        return Decision(True, countdown, settings.task_retries)
    return Decision(False)
