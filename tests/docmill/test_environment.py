"""Models read from the environment (docmill/environment.py): prefix, nesting, precedence and
decoding, on models made here."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from docmill.environment import EnvironmentModel, environment_values


class _Inner(BaseModel):
    shape: tuple[int, int] | None = None
    flag: bool = False


class _Outer(EnvironmentModel):
    env_prefix = "TESTENV_"
    model_config = ConfigDict(extra="ignore")

    name: str = "default"
    count: int = 1
    inner: _Inner = _Inner()
    inner_count: int = 0  # shares the prefix of `inner`'s variables, with one underscore


def test_the_environment_fills_what_the_caller_does_not_give(monkeypatch):
    monkeypatch.setenv("TESTENV_NAME", "from-env")
    monkeypatch.setenv("testenv_count", "7")  # names match in any case
    assert (_Outer().name, _Outer().count) == ("from-env", 7)
    assert _Outer(name="given").name == "given"
    assert _Outer(count=2).count == 2


def test_nested_fields_take_json_for_containers_and_strings_for_the_rest(monkeypatch):
    monkeypatch.setenv("TESTENV_INNER__SHAPE", "[3, 48]")
    monkeypatch.setenv("TESTENV_INNER__FLAG", "true")
    monkeypatch.setenv("TESTENV_INNER_COUNT", "4")
    found = _Outer()
    assert found.inner == _Inner(shape=(3, 48), flag=True) and found.inner_count == 4


def test_a_whole_nested_model_as_json_is_completed_by_its_fields(monkeypatch):
    values = environment_values(_Outer, "TESTENV_", {"TESTENV_INNER": '{"flag": true}', "TESTENV_INNER__SHAPE": "[1,2]"})
    assert values == {"inner": {"flag": True, "shape": [1, 2]}}


def test_a_value_that_is_not_json_reaches_validation_and_names_its_field(monkeypatch):
    monkeypatch.setenv("TESTENV_INNER__SHAPE", "three by four")
    with pytest.raises(ValidationError) as caught:
        _Outer()
    assert caught.value.errors()[0]["loc"] == ("inner", "shape")


def test_other_variables_are_left_alone_but_unknown_nested_ones_reach_the_nested_model():
    assert environment_values(_Outer, "TESTENV_", {"OTHER_NAME": "x", "TESTENV_UNKNOWN": "y"}) == {}
    assert environment_values(_Outer, "TESTENV_", {"TESTENV_INNER__FLAGG": "1"}) == {"inner": {"flagg": "1"}}
