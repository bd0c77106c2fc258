"""The subcommands of `opsos`; each module offers `register(subparsers)` and sets `run` on its parser."""
