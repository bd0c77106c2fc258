"""`opsos workflows list|check FILE|show NAME`: the workflows opsos runs, and the operator's workflow files checked."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator import Message


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("workflows", help="the workflows opsos runs; check a workflow file")
    sub = parser.add_subparsers(dest="workflows_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="every workflow, with where it comes from (OPSOS_WORKFLOWS_DIR adds yours)") \
        .set_defaults(run=run_list)
    check = sub.add_parser("check", help="check a workflow file: each problem names the file, the step and the field")
    check.add_argument("file", type=Path)
    check.set_defaults(run=run_check)
    show = sub.add_parser("show", help="a workflow's steps, what each does and how it is undone")
    show.add_argument("name")
    show.set_defaults(run=run_show)
    parser.set_defaults(default_log_level="warning")


def _printed(make: Callable[[], Message]) -> int:
    """Print the message `make` builds; a workflow error goes to stderr with exit code 1."""
    from orchestrator import OpsError

    try:
        print(make().plain_text())
    except OpsError as broken:
        print(broken, file=sys.stderr)
        return 1
    return 0


def run_list(args: argparse.Namespace) -> int:
    from orchestrator import Settings, workflows_overview

    return _printed(lambda: workflows_overview(Settings()))


def run_check(args: argparse.Namespace) -> int:
    from orchestrator import workflow_file_check

    return _printed(lambda: workflow_file_check(args.file))


def run_show(args: argparse.Namespace) -> int:
    from orchestrator import Settings, workflow_detail

    return _printed(lambda: workflow_detail(args.name, Settings()))
