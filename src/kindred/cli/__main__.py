"""`python -m kindred.cli` runs the `kindred` command."""

from kindred.cli.main import main

if __name__ == "__main__":
    main()
