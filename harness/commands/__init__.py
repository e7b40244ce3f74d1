"""One module per CLI subcommand, each with ``HELP`` (its line in ``harness --help``),
``add_parser(subparsers)`` (its arguments) and ``main(args: argparse.Namespace) -> int``;
:mod:`harness.cli` lists them in ``COMMANDS``. A module imports at its top only what its
parser needs and the rest inside ``main``, so that ``harness --help`` stays fast.

:mod:`harness.commands.options` is not a subcommand: it holds what their parsers share.
"""
