"""The template syntax of workflow files: `{{ path }}` references, looked up, never evaluated.

A path is dot-separated names and list positions under one of three roots: `params` (the intent's
parameters), `steps.<name>` (an earlier step's result) and `item` (the current item of a for-each
step): `{{ params.email }}`, `{{ steps.provision.key }}`, `{{ item.id }}`, `{{ params.emails.0 }}`.
A value that is one reference alone keeps the referenced value's type (a number stays a number);
a reference inside other text is formatted into it. There are no expressions, filters or calls.

A condition (`when`) is a path, optionally negated (`not params.final`), or a path compared with a
TOML-style literal (`params.plan == "yearly"`, `steps.score.score != 0`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

ROOTS = ("params", "steps", "item")
_REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_CONDITION = re.compile(r"^(?:(?P<neg>not)\s+)?(?P<path>[A-Za-z0-9_.]+)(?:\s*(?P<op>==|!=)\s*(?P<literal>.+))?$")


class TemplateError(ValueError):
    """A reference that is not a path under a known root, or names a value the run does not have."""


def path_problem(path: str) -> str | None:
    """Why `path` is not a reference this syntax reads (pure); None when it is one."""
    if not _PATH.match(path):
        return f"“{path}” is not a dotted path"
    root = path.split(".", 1)[0]
    if root not in ROOTS:
        return f"“{path}” starts with “{root}”, not one of {', '.join(ROOTS)}"
    if root == "steps" and path.count(".") < 1:
        return f"“{path}” names no step (steps.<name>.<field>)"
    return None


def references(value: Any) -> Iterator[str]:
    """Every path a value (a string, or lists and tables of them) references, in order."""
    if isinstance(value, str):
        yield from (m.group(1) for m in _REFERENCE.finditer(value))
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """The value at `path` in `scope` (its roots as keys); raises TemplateError when it is not there."""
    problem = path_problem(path)
    if problem is not None:
        raise TemplateError(problem)
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise TemplateError(f"“{path}”: there is no “{part}” here")
    return value


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """`value` with every reference replaced from `scope` (pure); lists and tables are rendered inside."""
    if isinstance(value, Mapping):
        return {key: render(inner, scope) for key, inner in value.items()}
    if isinstance(value, list):
        return [render(inner, scope) for inner in value]
    if not isinstance(value, str):
        return value
    whole = _REFERENCE.fullmatch(value.strip())
    if whole is not None:
        return lookup(whole.group(1), scope)
    return _REFERENCE.sub(lambda m: _text(lookup(m.group(1), scope)), value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def condition_problem(text: str) -> str | None:
    """Why `text` is not a condition this syntax reads (pure); None when it is one."""
    match = _CONDITION.match(text.strip())
    if match is None:
        return f"“{text}” is not a condition (a path, “not <path>”, or “<path> == <literal>”)"
    if match.group("literal") is not None and match.group("neg"):
        return f"“{text}”: use != rather than not with a comparison"
    if match.group("literal") is not None:
        try:
            json.loads(match.group("literal"))
        except ValueError:
            return f"“{text}”: {match.group('literal')} is not a literal (a number, true, false or \"text\")"
    return path_problem(match.group("path"))


def condition_path(text: str) -> str:
    match = _CONDITION.match(text.strip())
    assert match is not None, "checked at load by condition_problem"
    return match.group("path")


def holds(text: str, scope: Mapping[str, Any]) -> bool:
    """Whether the condition `text` holds in `scope` (pure); raises TemplateError for a missing value."""
    match = _CONDITION.match(text.strip())
    if match is None or condition_problem(text) is not None:
        raise TemplateError(condition_problem(text) or text)
    value = lookup(match.group("path"), scope)
    if match.group("op") is None:
        return not value if match.group("neg") else bool(value)
    literal = json.loads(match.group("literal"))
    return (value == literal) if match.group("op") == "==" else (value != literal)
