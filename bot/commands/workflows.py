"""`opsos workflows list|check FILE|show NAME`: the workflows opsos runs, and the operator's workflow files checked."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


def run_list(args: argparse.Namespace) -> int:
    from orchestrator import OpsError, Settings, workflows_overview

    try:
        print(workflows_overview(Settings()).plain_text())
    except OpsError as broken:
        print(broken, file=sys.stderr)
        return 1
    return 0


def run_check(args: argparse.Namespace) -> int:
    from orchestrator import OpsError, workflow_file_check

    try:
        print(workflow_file_check(args.file).plain_text())
    except OpsError as broken:
        print(broken, file=sys.stderr)
        return 1
    return 0


def run_show(args: argparse.Namespace) -> int:
    from orchestrator import OpsError, Settings, workflow_detail

    try:
        print(workflow_detail(args.name, Settings()).plain_text())
    except OpsError as broken:
        print(broken, file=sys.stderr)
        return 1
    return 0
