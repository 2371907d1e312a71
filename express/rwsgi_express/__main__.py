"""Entry point for ``python3 -m rwsgi_express``."""

from rwsgi_express.cli import main

raise SystemExit(main())
