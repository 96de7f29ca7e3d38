"""Reports over the card and feedback store (``cds_service.feedback``), for going live
(docs/go-live.md):

- ``cds_service.reports.feedback_report``: live cards shown and what came of them (accepted,
  overridden by reason, ignored), with JSON, CSV and standalone HTML renderers;
- ``cds_service.reports.shadow_report``: the cards shadow mode would have shown;
- ``cds_service.reports.since``: ``parse_since`` for ``--since 30d|12w|48h|YYYY-MM-DD``;
- ``cds_service.reports.charts``: the HTML page's charts (matplotlib, the ``reports`` extra).

The submodules are not imported here: ``from cds_service.reports import feedback_report`` names
the module, and only the HTML renderer needs matplotlib.
"""
