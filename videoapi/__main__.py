"""`python -m videoapi`: the CLI."""

from videoapi.cli import main

main()
