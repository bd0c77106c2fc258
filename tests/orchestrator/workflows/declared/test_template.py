"""The template syntax: references looked up, never evaluated; conditions over one path."""
from __future__ import annotations

import pytest

from orchestrator.chat.commands import Command, parse
from orchestrator.workflows.declared.template import TemplateError, holds, render

SCOPE = {"params": {"name": "Ana", "cents": 1200, "tags": ["vip"]}, "steps": {"a": {"ok": True}}, "item": None}


@pytest.mark.parametrize(("value", "expected"), [
    ("{{ params.cents }}", 1200),  # alone, the value keeps its type
    ("Hi {{ params.name }}, {{ params.cents }}", "Hi Ana, 1200"),
    ("{{ params.tags.0 }}", "vip"),
    ({"x": ["{{ steps.a.ok }}"]}, {"x": [True]}),
    ("no references", "no references"),
])
def test_render(value, expected) -> None:
    assert render(value, SCOPE) == expected


@pytest.mark.parametrize("value", ["{{ params.missing }}", "{{ __import__('os') }}", "{{ params.name.upper() }}",
                                   "{{ env.HOME }}"])
def test_anything_but_a_known_path_is_refused(value) -> None:
    with pytest.raises(TemplateError):
        render(value, SCOPE)


@pytest.mark.parametrize(("condition", "expected"), [
    ("steps.a.ok", True), ("not steps.a.ok", False), ('params.name == "Ana"', True), ("params.cents != 1200", False),
])
def test_conditions(condition, expected) -> None:
    assert holds(condition, SCOPE) is expected


def test_workflows_is_a_chat_command() -> None:
    assert parse("workflows").command is Command.WORKFLOWS
    assert parse("workflows for the webinar leads").command is Command.REQUEST
