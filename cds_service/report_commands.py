"""``ivig-cds report shadow|feedback`` and ``ivig-cds knowledge report``: the go-live commands
(docs/go-live.md). They read the deployment's settings (``IVIG_CDS_*``) like ``serve`` does: the
same database, the same knowledge, thresholds and formulary."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.config import ConfigError, Settings, load_settings


def add_parsers(commands: Any) -> None:
    report = commands.add_parser("report", help="what the service said, and what came of it")
    kinds = report.add_subparsers(dest="kind", required=True)
    shadow = kinds.add_parser("shadow", help="the cards shadow mode recorded (IVIG_CDS_MODE)")
    _period(shadow)
    shadow.add_argument("--format", choices=("text", "json"), default="text")
    shadow.add_argument("-o", "--output", help="write here (default: standard output)")
    feedback = kinds.add_parser(
        "feedback", help="shown, accepted, overridden and ignored cards, with the trend by week"
    )
    _period(feedback)
    feedback.add_argument("--format", choices=("html", "json", "csv"), default="html")
    feedback.add_argument("-o", "--output", help="write here (default: standard output)")
    knowledge = commands.add_parser("knowledge", help="the clinical knowledge in force")
    actions = knowledge.add_subparsers(dest="action", required=True)
    document = actions.add_parser(
        "report", help="one standalone HTML page for the pharmacy and therapeutics committee"
    )
    document.add_argument("-o", "--output", required=True, help="the HTML file to write")
    document.add_argument("--fixtures-dir", default=None, help="default: the fhir_fixtures folder")


def _period(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", default="30d", help="30d, 12w, 48h or a date (YYYY-MM-DD); default 30d"
    )
    parser.add_argument("--until", default=None, help="a date (YYYY-MM-DD); default now")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "knowledge":
            return _knowledge(args)
        return _report(args)
    except (ConfigError, ValueError, ImportError) as exc:
        print(f"ivig-cds {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _report(args: argparse.Namespace) -> int:
    from cds_service.feedback import make_engine
    from cds_service.reports import feedback_report, shadow_report
    from cds_service.reports.since import parse_since

    now = datetime.now(UTC)
    since = parse_since(args.since, now)
    until = parse_since(args.until, now) if args.until else now
    settings = load_settings(Settings, os.environ, {})
    groups = _card_groups()
    engine = make_engine(settings.database_url)
    try:
        if args.kind == "shadow":
            found = shadow_report.shadow_report(engine, since, until, groups)
            text = (
                shadow_report.to_json(found)
                if args.format == "json"
                else shadow_report.to_text(found)
            )
        else:
            report = feedback_report.feedback_report(engine, since, until, groups)
            render = {
                "html": feedback_report.to_html,
                "json": feedback_report.to_json,
                "csv": feedback_report.to_csv,
            }[args.format]
            text = render(report)
    finally:
        engine.dispose()
    _write(text, args.output)
    return 0


def _card_groups() -> dict[str, str]:
    """Card group code -> display, from the knowledge in force (card-groups.json)."""
    from hooks.knowledge_base import load_knowledge

    return {group.code: group.display for group in load_knowledge().card_groups.groups}


def _knowledge(args: argparse.Namespace) -> int:
    from hooks.knowledge_document import write_knowledge_document

    fixtures = Path(args.fixtures_dir) if args.fixtures_dir else None
    write_knowledge_document(Path(args.output), dict(os.environ), {}, fixtures)
    print(f"ivig-cds knowledge: wrote {args.output}")
    return 0


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"ivig-cds report: wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
