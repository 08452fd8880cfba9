from typing import Any

import pytest

from f8a_jobs.core.errors import InvalidHandler, InvalidInput, UnknownHandler
from f8a_jobs.handlers.base import BaseHandler
from f8a_jobs.handlers.kwargs import fits
from f8a_jobs.handlers.registry import _checked, get_handler, handlers


def test_registry_has_built_ins_and_operator_modules():
    names = set(handlers())
    assert {"FlowScheduling", "SelectiveFlowScheduling", "Noop"} <= names
    assert {"Fail", "Block"} <= names  # from F8A_JOBS_HANDLER_MODULES=tests.handlers


def test_unknown_handler_lists_the_known_ones():
    with pytest.raises(UnknownHandler) as caught:
        get_handler("Nope")
    assert caught.value.field == "handler"
    assert "FlowScheduling" in caught.value.detail


def test_plugins_must_be_base_handler_subclasses():
    with pytest.raises(InvalidHandler, match="not a BaseHandler subclass"):
        _checked(dict, "entry point 'bad'")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"flow_name": "f"}, "kwargs"),
        ({"flow_name": "f", "flow_arguments": [], "extra": 1}, "kwargs"),
        ({"flow_name": 3, "flow_arguments": []}, "kwargs.flow_name"),
        ({"flow_name": "f", "flow_arguments": "x"}, "kwargs.flow_arguments"),
        ({"flow_name": "f", "flow_arguments": [1]}, "kwargs.flow_arguments[0]"),
        ({"flow_name": " ", "flow_arguments": []}, "kwargs.flow_name"),
    ],
)
def test_kwargs_are_checked_against_execute(kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        get_handler("FlowScheduling").validate(kwargs)
    assert caught.value.field == field


def test_selective_flow_scheduling_needs_tasks():
    handler = get_handler("SelectiveFlowScheduling")
    handler.validate({"flow_name": "f", "task_names": ["t"], "flow_arguments": [{}]})
    with pytest.raises(InvalidInput) as caught:
        handler.validate({"flow_name": "f", "task_names": [], "flow_arguments": [{}]})
    assert caught.value.field == "kwargs.task_names"


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (1, int, True),
        (True, int, False),
        (1, float, True),
        ("x", str | None, True),
        (None, str | None, True),
        ([{"a": 1}], list[dict[str, Any]], True),
        ([{"a": 1}, 2], list[dict[str, Any]], False),
        ({"a": 1}, dict[str, int], True),
        ({"a": "b"}, dict[str, int], False),
        (object(), Any, True),
    ],
)
def test_json_values_fit_type_hints(value, hint, expected):
    assert fits(value, hint) is expected


def test_a_handler_without_hints_accepts_any_values():
    class Loose(BaseHandler):
        def execute(self, anything, **rest):  # type: ignore[no-untyped-def]
            return anything

    Loose.validate({"anything": [1, "two"], "more": None})
    assert Loose("job").execute(anything=5) == 5
