"""``python -m jaxhash`` is the ``jaxhash`` command."""

from jaxhash.cli import main

main()
