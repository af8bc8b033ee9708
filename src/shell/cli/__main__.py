"""`python -m shell.cli`."""

from shell.cli import main

main()
