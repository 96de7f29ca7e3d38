"""``python -m cds_service serve``: the same as ``ivig-cds serve``."""

from cds_service.cli import main

raise SystemExit(main())
