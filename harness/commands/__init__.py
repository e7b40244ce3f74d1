"""One module per CLI subcommand, each with ``main(args: argparse.Namespace) -> int``."""
