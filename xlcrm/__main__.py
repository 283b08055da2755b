"""`python -m xlcrm`."""

from .cli import main

main()
