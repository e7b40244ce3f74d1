"""One module per CLI subcommand, each with ``add_parser(subparsers)`` (its arguments and help)
and ``main(args: argparse.Namespace) -> int``; :mod:`harness.cli` lists them in ``COMMANDS``.

:mod:`harness.commands.options` is not a subcommand: it holds what their parsers share.
"""
