"""`python -m bot` is `cohortbot`."""

from bot.cli import main

main()
