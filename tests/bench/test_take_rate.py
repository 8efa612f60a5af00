"""bench.take_rate on a real Redis: both sides take, record and ack every message, and the
figures it saves are rates of each side, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

from typing import Any

import pytest

from bench import take_rate

pytestmark = pytest.mark.services


@pytest.mark.parametrize("queues", ["1", "3"])
def test_both_sides_consume_every_message_and_the_ratio_is_saved(redis_url, monkeypatch, capsys, queues):
    saved: dict[str, Any] = {}
    monkeypatch.setattr(take_rate, "save_result", lambda name, doc: saved.update(doc))
    assert take_rate.main(["--messages", "40", "--rounds", "1", "--queues", queues, "--redis", redis_url]) == 0
    brpop, taker = saved["rounds"]["brpop"][0], saved["rounds"]["taker"][0]
    assert brpop > 0 and taker > 0 and saved["taker_over_brpop"] == round(taker / brpop, 3)
    assert "taker / brpop" in capsys.readouterr().out
