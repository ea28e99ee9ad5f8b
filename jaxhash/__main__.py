"""``python -m jaxhash`` is the ``jaxhash`` command."""

from jaxhash.cli import main

raise SystemExit(main())
