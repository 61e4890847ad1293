"""``python -m dlprov`` is the ``dlprov`` command."""
from dlprov.cli.main import main

main()
