"""The `yunguan` command line (Typer + rich)."""
