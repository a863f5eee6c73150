"""The `kindred` command."""
