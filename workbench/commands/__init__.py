"""One module per CLI subcommand.

Each module defines `NAME` (the subcommand), `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int` (the exit status). `workbench.cli` discovers them, so adding a stage means
adding a module here and nothing else.
"""
