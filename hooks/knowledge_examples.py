"""Example cards for the knowledge document (``hooks.knowledge_document``): the fixture scenarios
(``fhir_fixtures/scenarios/index.json``, ``fhir_fixtures/patient-view/index.json``) run in process
through the real service, and each card drawn as an EHR shows it.

For each topic the scenario expected to fire it with the fewest other findings is run (once per
scenario and hook), as the scenario tests run it: full prefetch, the index's evaluation date, a
temporary database and audit spool, no repeat memory. A reporting module, so it may build the app.
"""

from __future__ import annotations

import copy
import html
import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cds_service import create_app
from cds_service.config import ENV_PREFIX
from hooks.card_builder import FINDINGS_EXTENSION
from hooks.registry import PREFETCH_KEYS

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fhir_fixtures"
ORDER_HOOKS = ("order-select", "order-sign")
INDICATORS = ("info", "warning", "critical")
# The searches of the prefetch, by key (the Patient is prefetched as itself).
PREFETCH_TYPES = {k.key: k.resource_type for k in PREFETCH_KEYS if k.key != "patient"}
REPORTS_EXTRA = "pip install 'ivig-cds[reports]'"


@dataclass(frozen=True)
class Example:
    """One card a fixture scenario produced, for the topic it illustrates."""

    topic: str
    scenario: str
    description: str
    hook: str
    card: Mapping[str, Any]


@dataclass(frozen=True)
class _Run:
    folder: str  # "scenarios" or "patient-view"
    name: str
    description: str
    hook: str
    orders: tuple[str, ...] = ()
    selected: tuple[str, ...] = ()


def esc(value: object) -> str:
    """Text made safe for HTML, attributes included."""
    return html.escape(str(value), quote=True)


def markdown() -> MarkdownIt:
    """CommonMark as an EHR renders a card's detail: raw HTML stays text, no images."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - the extra is installed where reports are made
        raise ImportError(
            f"the knowledge document renders card details with markdown-it-py: {REPORTS_EXTRA}"
        ) from None
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _resources(fixtures: Path, folder: str, name: str) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in _json(fixtures / folder / f"{name}.json")["entry"]]


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def _runs(fixtures: Path, topics: set[str]) -> tuple[list[_Run], str]:
    """Per topic, the scenario and hook expected to fire it with the fewest other findings."""
    best: dict[str, tuple[int, int, _Run]] = {}
    evaluation_date = ""
    position = 0
    for folder, hooks in (("scenarios", ORDER_HOOKS), ("patient-view", ("patient-view",))):
        index_path = fixtures / folder / "index.json"
        if not index_path.is_file():
            continue
        index = _json(index_path)
        evaluation_date = evaluation_date or str(index.get("evaluationDate", ""))
        for scenario in index["scenarios"]:
            for hook in hooks:
                expected = scenario.get("fires_at", {}).get(hook, scenario.get("fires", {}))
                names = tuple(
                    scenario.get("orders") or ([scenario["order"]] if "order" in scenario else [])
                )
                run = _Run(
                    folder,
                    scenario["name"],
                    scenario.get("description", ""),
                    hook,
                    names,
                    tuple(scenario.get("selected", ())),
                )
                position += 1
                for topic in set(expected) & topics:
                    rank = (len(expected), position, run)
                    if topic not in best or rank[:2] < best[topic][:2]:
                        best[topic] = rank
    chosen = list(dict.fromkeys(run for _, _, run in sorted(best.values(), key=lambda r: r[1])))
    return chosen, evaluation_date


def _body(fixtures: Path, run: _Run, prefetch_keys: set[str]) -> dict[str, Any]:
    resources = _resources(fixtures, run.folder, run.name)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for key, kind in PREFETCH_TYPES.items():
        if key in prefetch_keys:
            prefetch[key] = _searchset([r for r in resources if r["resourceType"] == kind])
    context: dict[str, Any] = {"userId": "Practitioner/example", "patientId": patient["id"]}
    if run.hook in ORDER_HOOKS:
        orders = []
        for name in run.orders:
            text = (fixtures / "orders" / f"{name}.json").read_text(encoding="utf-8")
            orders.append(json.loads(text.replace("PATIENT_ID", patient["id"])))
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": copy.deepcopy(order)} for order in orders],
        }
        if run.hook == "order-select":
            by_name = dict(zip(run.orders, orders, strict=True))
            picked = [by_name[n] for n in run.selected] or [
                o for o in orders if o["resourceType"] == "MedicationRequest"
            ]
            context["selections"] = [f"{o['resourceType']}/{o['id']}" for o in picked]
    return {
        "hook": run.hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": prefetch,
    }


def _site_config(
    env: Mapping[str, str], overrides: Mapping[str, Any], thresholds: set[str]
) -> dict[str, Any]:
    """The site's knowledge settings (thresholds, formulary) as test-config keys, so the example
    cards use what the page says is in force even when ``env`` is not the process's."""
    keys = {name.upper() for name in thresholds} | {"FORMULARY"}
    found: dict[str, Any] = {key: env[ENV_PREFIX + key] for key in keys if ENV_PREFIX + key in env}
    found.update(overrides)
    return found


def example_cards(
    topics: set[str],
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    thresholds: set[str],
    fixtures: Path | None = None,
) -> dict[str, Example]:
    """Topic -> an example card, for every topic of ``topics`` a fixture scenario produces."""
    fixtures = fixtures or FIXTURES_DIR
    runs, evaluation_date = _runs(fixtures, topics)
    if not runs:
        return {}
    found: dict[str, Example] = {}
    with tempfile.TemporaryDirectory(prefix="ivig-cds-knowledge-") as tmp:
        config = {
            **_site_config(env, overrides, thresholds),
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'feedback.sqlite3'}",
            "AUDIT_SPOOL_DIR": str(Path(tmp) / "audit-spool"),
            "EVALUATION_DATE": evaluation_date,
            "REPEAT_WINDOW_S": 0,
            "AUTH": "off",
            "MODE": "live",
            "ALLOWED_FHIR_SERVERS": (),
            "REQUEST_BUDGET_S": 60.0,
            "CHECK_BUDGET_S": 60.0,
        }
        quiet = logging.getLogger("cds_service")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # its warning of the fixed evaluation date is ours to know
        try:
            app = create_app(config)
        finally:
            quiet.setLevel(level)
        runtime = app.extensions["ivig_cds"]
        try:
            client = app.test_client()
            services = {s["hook"]: s for s in client.get("/cds-services").get_json()["services"]}
            for run in runs:
                service = services[run.hook]
                body = _body(fixtures, run, set(service.get("prefetch", {})))
                response = client.post(f"/cds-services/{service['id']}", json=body)
                if response.status_code != 200:
                    continue
                for card in response.get_json()["cards"]:
                    codes = [
                        f["code"] for f in card.get("extension", {}).get(FINDINGS_EXTENSION, [])
                    ]
                    for topic in codes:
                        if topic in topics and topic not in found:
                            found[topic] = Example(topic, run.name, run.description, run.hook, card)
        finally:
            runtime.audit.close()
            runtime.repeats.close()
            runtime.store.engine.dispose()
    return found


def render_card(card: Mapping[str, Any], md: MarkdownIt | None = None) -> str:
    """A card as an EHR shows it: the indicator's colour band, the summary, the detail rendered
    from Markdown (record text stays text), the source as a link, the suggestions as (disabled)
    buttons and the override reasons. Everything else is escaped."""
    md = md or markdown()
    indicator = str(card.get("indicator", "info"))
    kind = indicator if indicator in INDICATORS else "info"
    source = card.get("source", {})
    label = esc(source.get("label", ""))
    url = str(source.get("url", ""))
    cited = f'<a href="{esc(url)}">{label}</a>' if url.startswith("https://") else label
    topic = source.get("topic", {})
    parts = [
        f'<article class="card card-{kind}">',
        f'<div class="band">{esc(indicator.upper())}'
        f'<span class="topic-code">{esc(topic.get("code", ""))}</span></div>',
        '<div class="card-body">',
        f'<p class="summary">{esc(card.get("summary", ""))}</p>',
        f'<div class="detail">{md.render(str(card.get("detail", "")))}</div>',
        f'<p class="card-source">Source: {cited}</p>',
    ]
    suggestions = card.get("suggestions", [])
    if suggestions:
        buttons = "".join(
            f'<button type="button" disabled>{esc(s.get("label", ""))}</button>'
            for s in suggestions
        )
        parts.append(f'<div class="suggestions">{buttons}</div>')
    reasons = card.get("overrideReasons", [])
    if reasons:
        items = "".join(
            f"<li>{esc(r.get('display', ''))} <code>{esc(r.get('code', ''))}</code></li>"
            for r in reasons
        )
        parts.append(f'<div class="reasons">Override reasons:<ul>{items}</ul></div>')
    parts.append("</div></article>")
    return "".join(parts)
