"""Subcommands of the tidemalloc command: one module each (add_parser)."""
VERSION = "0.1.0"
