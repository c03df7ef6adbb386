"""``python -m harness.cli`` = ``bench``."""

from harness.cli.main import main

main()
