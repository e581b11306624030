"""``python -m koine_sdk.testing``: the same as the ``koine-gateway`` command."""

from ._cli import main

raise SystemExit(main())
