"""Command-line jobs; each module registers one `streamrank` subcommand."""
