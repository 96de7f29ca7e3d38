"""``ivig-cds knowledge report``: the clinical knowledge in force, as one standalone HTML page a
pharmacy and therapeutics committee reads and signs.

Per topic (in the display order of ``knowledge/topics.json``): what fires it, its indicator and
suggestions, its card groups, the thresholds it reads with the values in force (site overrides
marked), the value sets it reads with their codes (UNVERIFIED codes marked), its sources and an
example card from the fixture scenarios (``hooks.knowledge_examples``). Then the site formulary,
the product catalogue and every value set. Nothing is fetched: no script, style inline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hooks import build_registry
from hooks.knowledge_base import KNOWLEDGE_DIR, KnowledgeBase, load_knowledge
from hooks.knowledge_base.formulary import OVERRIDE, SETTING, check_formulary, read_formulary
from hooks.knowledge_base.schema import FormularyFile, Source
from hooks.knowledge_base.thresholds import thresholds_in_force
from hooks.knowledge_examples import Example, esc, example_cards, markdown, render_card
from hooks.knowledge_valuesets import knowledge_file_valuesets, valueset_table
from hooks.registry import REGISTRY
from hooks.rules.base import Rule

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Arial,sans-serif;color:#1d2329;
margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{border-bottom:2px solid #c9d1d9;padding-bottom:4px;margin-top:36px}
h3{margin:28px 0 6px;font-size:18px}h3 code{font-size:15px;color:#45505a}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f5f7}dl{display:grid;grid-template-columns:170px 1fr;gap:4px 12px;margin:8px 0}
dt{font-weight:600;color:#45505a}dd{margin:0}
.meta td:first-child{width:190px;font-weight:600}
.signoff{display:grid;grid-template-columns:repeat(2,1fr);gap:18px 32px;margin:16px 0}
.line{border-bottom:1px solid #1d2329;height:32px}.line-label{font-size:12px;color:#45505a}
.site{background:#fff3cd;color:#6b4e00;font-weight:700;padding:1px 5px;border-radius:3px}
.unverified{background:#fde2e1;color:#8a1c14;font-weight:700;padding:1px 5px;border-radius:3px}
.verified{color:#1a7f37}.muted{color:#57606a}
section.topic{border-top:1px solid #d0d7de;page-break-inside:avoid}
.card{border:1px solid #c9d1d9;border-radius:6px;overflow:hidden;margin:8px 0 16px;max-width:760px}
.card .band{color:#fff;font-weight:700;padding:4px 10px;display:flex;justify-content:space-between}
.card-info .band{background:#0969da}.card-warning .band{background:#bf8700}
.card-critical .band{background:#cf222e}.topic-code{font-weight:400;font-family:monospace}
.card-body{padding:8px 12px}.summary{font-weight:700;font-size:15px;margin:4px 0 8px}
.detail{font-size:13px}.suggestions button{margin:4px 6px 4px 0;padding:4px 10px;font:inherit}
.reasons ul{margin:2px 0 0 18px;padding:0}.reasons{font-size:12px;color:#45505a}
@media print{body{max-width:none;padding:0}a{color:inherit}}
"""


def _cite(source: Source) -> str:
    if source.url:
        return f'<a href="{esc(source.url)}">{esc(source.label)}</a>'
    return f'{esc(source.label)} <span class="muted">(no link)</span>'


def _inline(md: Any, text: str) -> str:
    return str(md.renderInline(text))


# ------------------------------------------------------------------------------ the formulary


def site_formulary(
    kb: KnowledgeBase, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> FormularyFile | None:
    """The site formulary (``IVIG_CDS_FORMULARY``), validated as the service validates it at
    start-up; None when the site has none."""
    where = overrides.get(OVERRIDE, env.get(SETTING))
    if not where:
        return None
    formulary, name = read_formulary(where)
    check_formulary(kb, formulary, name)
    return formulary


# A discontinued product may stay on a formulary (stock on the shelf); no switch chooses it.
_DISCONTINUED = ' <span class="unverified">discontinued: never suggested</span>'


def _formulary(kb: KnowledgeBase, formulary: FormularyFile | None) -> str:
    if formulary is None:
        return "<p>No site formulary: every current catalogue product may be suggested.</p>"
    stocked = list(formulary.stocked)
    known = {p.id: p for p in kb.catalogue.products}
    rows = "".join(
        f"<tr><td>{esc(known[pid].brand)}{_DISCONTINUED if known[pid].discontinued else ''}"
        f"</td><td><code>{esc(pid)}</code></td>"
        f"<td>{esc(', '.join(known[pid].routes))}</td></tr>"
        for pid in stocked
    )
    missing = [p for p in kb.catalogue.products if p.id not in stocked and not p.family]
    others = "".join(
        f"<li>{esc(p.brand)} <code>{esc(p.id)}</code>"
        f"{' (discontinued)' if p.discontinued else ''}</li>"
        for p in missing
    )
    return (
        f"<p>Formulary {esc(formulary.version)} of {esc(formulary.site)}: product switches "
        "suggest stocked products only; when the best product is not stocked, the card says "
        f"so.</p><h3>Stocked</h3><table><tr><th>brand</th><th>catalogue id</th><th>routes</th>"
        f"</tr>{rows}</table><h3>Catalogue products not stocked</h3><ul>{others}</ul>"
    )


# ------------------------------------------------------------------------------ the catalogue


def _catalogue(kb: KnowledgeBase) -> str:
    rows = []
    for p in kb.catalogue.products:
        excipients = ", ".join(sorted(p.excipients)) or "none listed"
        if p.excipients_unverified:
            excipients += (
                f' <span class="unverified">UNVERIFIED</span> '
                f"{esc(', '.join(sorted(p.excipients_unverified)))}"
            )
        iga = esc(p.iga.text) + (
            ' <span class="unverified">UNVERIFIED</span>' if p.iga.unverified else ""
        )
        concentration = f"{p.concentration_percent:g}%" if p.concentration_percent else "varies"
        discontinued = "yes" + (f": {esc(p.discontinued_note)}" if p.discontinued_note else "")
        rows.append(
            f"<tr><td>{esc(p.brand)}{' <span class=muted>(family)</span>' if p.family else ''}"
            f"<br><code>{esc(p.id)}</code></td><td>{esc(', '.join(p.routes))}</td>"
            f"<td>{esc(concentration)}</td><td>{iga}</td><td>{excipients}</td>"
            f"<td>{discontinued if p.discontinued else 'no'}</td><td>{_cite(p.source)}</td></tr>"
        )
    return (
        "<table><tr><th>brand</th><th>routes</th><th>concentration</th><th>IgA</th>"
        "<th>excipients</th><th>discontinued</th><th>source</th></tr>" + "".join(rows) + "</table>"
    )


# ------------------------------------------------------------------------------ per topic


def _thresholds(
    kb: KnowledgeBase, names: Iterable[str], values: Any, changed: Mapping[str, Any]
) -> str:
    rows = []
    for name in sorted(set(names)):
        entry = kb.threshold_entries[name]
        value = getattr(values, name)
        if name in changed:
            status = f'<span class="site">SITE OVERRIDE</span> (file: {entry.value:g})'
        elif entry.site:
            status = f"file value; site may set <code>IVIG_CDS_{esc(name.upper())}</code>"
        else:
            status = "fixed by its source"
        cited = _cite(entry.source)
        if entry.unverified:
            cited += ' <span class="unverified">UNVERIFIED</span>'
        rows.append(
            f'<tr id="threshold-{esc(name)}"><td><code>{esc(name)}</code></td>'
            f"<td><strong>{value:g}</strong></td><td>{esc(entry.unit)}</td><td>{status}</td>"
            f"<td>{esc(entry.meaning)}</td><td>{cited}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No thresholds.</p>'
    return (
        "<table><tr><th>threshold</th><th>value in force</th><th>unit</th><th>status</th>"
        "<th>meaning</th><th>source</th></tr>" + "".join(rows) + "</table>"
    )


def _direct_valuesets(kb: KnowledgeBase, rules: list[Rule]) -> list[str]:
    names: list[str] = []
    for rule in rules:
        names += [*rule.reads.valuesets, *rule.reads.procedure_codes]
        names += [kb.observations[o].valueset for o in rule.reads.observations]
    return list(dict.fromkeys(names))


def _topic(
    kb: KnowledgeBase,
    directory: Path,
    topic: str,
    rules: list[Rule],
    thresholds: tuple[Any, Mapping[str, Any]],
    example: Example | None,
    md: Any,
) -> str:
    info = kb.topics[topic]
    hooks = sorted({hook for rule in rules for hook in rule.hooks})
    groups = kb.card_groups.topics.get(topic, {})
    displays = {g.code: g.display for g in kb.card_groups.groups}
    grouped = "; ".join(
        f"{esc(displays.get(code, code))} (<code>{esc(code)}</code>)"
        + ("" if key == "default" else f" when {esc(key)}")
        for key, code in groups.items()
    )
    through = list(
        dict.fromkeys(
            vs for rule in rules for vs in knowledge_file_valuesets(kb, rule.reads.knowledge)
        )
    )
    direct = _direct_valuesets(kb, rules)
    valuesets = "".join(valueset_table(directory, kb, name) for name in direct) or (
        '<p class="muted">No value sets of its own.</p>'
    )
    links = ", ".join(f'<a href="#vs-{esc(n)}">{esc(n)}</a>' for n in through if n not in direct)
    if links:
        files = ", ".join(sorted({k for rule in rules for k in rule.reads.knowledge}))
        valuesets += f"<p>Also the value sets named in {esc(files)}: {links}.</p>"
    sources = [_cite(info.source)]
    if info.productLabel:
        sources.append("the ordered product's prescribing information (catalogue below)")

    def field(name: str) -> str:  # one line per rule of the topic, each said once
        return "<br>".join(dict.fromkeys(_inline(md, str(getattr(r, name))) for r in rules))

    if example is None:
        shown = '<p class="muted">No fixture scenario produces this card.</p>'
    else:
        shown = (
            f"<p>Fixture scenario <code>{esc(example.scenario)}</code>, "
            f"<code>{esc(example.hook)}</code>: {esc(example.description)}</p>"
            + render_card(example.card, md)
        )
    return (
        f'<section class="topic" id="topic-{esc(topic)}"><h3>{esc(info.display)} '
        f"<code>{esc(topic)}</code></h3><dl>"
        f"<dt>Topic</dt><dd><code>{esc(topic)}</code></dd>"
        f"<dt>Hooks</dt><dd>{esc(', '.join(hooks))}</dd>"
        f"<dt>Checks</dt><dd>{field('checks')}</dd>"
        f"<dt>Fires when</dt><dd>{field('fires_when')}</dd>"
        f"<dt>Indicator</dt><dd>{field('indicator')}</dd>"
        f"<dt>Suggests</dt><dd>{field('suggests')}</dd>"
        f"<dt>Card group</dt><dd>{grouped}</dd>"
        f"<dt>Sources</dt><dd>{'; '.join(sources)}</dd></dl>"
        f"<h4>Thresholds</h4>"
        f"{_thresholds(kb, [t for r in rules for t in r.reads.thresholds], *thresholds)}"
        f"<h4>Value sets</h4>{valuesets}<h4>Example card</h4>{shown}</section>"
    )


# ------------------------------------------------------------------------------ the page


def knowledge_document(
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    fixtures_dir: Path | None = None,
    now: datetime | None = None,
) -> str:
    """The page, as text."""
    md = markdown()  # first: a missing extra is said before any work
    directory = Path(overrides.get("KNOWLEDGE_DIR", KNOWLEDGE_DIR))
    version = build_registry(env, overrides).knowledge_version
    kb = load_knowledge(directory, REGISTRY.valuesets(), REGISTRY.topics())
    values, changed = thresholds_in_force(kb.threshold_entries, env, overrides)
    ordered = REGISTRY.in_display_order(list(kb.topics))
    by_topic: dict[str, list[Rule]] = {}
    for rule in ordered.rules:
        by_topic.setdefault(rule.topic, []).append(rule)
    examples = example_cards(set(by_topic), env, overrides, REGISTRY.thresholds(), fixtures_dir)
    generated = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    contents = "".join(
        f'<li><a href="#topic-{esc(t)}">{esc(kb.topics[t].display)}</a> <code>{esc(t)}</code></li>'
        for t in by_topic
    )
    topics = "".join(
        _topic(kb, directory, t, rules, (values, changed), examples.get(t), md)
        for t, rules in by_topic.items()
    )
    overridden = (
        ", ".join(f"<code>{esc(n)}</code> = {v:g}" for n, v in sorted(changed.items())) or "none"
    )
    every = sorted(set(kb.valuesets))
    appendix = "".join(valueset_table(directory, kb, name, anchor=True) for name in every)
    signoff = "".join(
        f'<div><div class="line"></div><div class="line-label">{label}</div></div>'
        for label in ("Name", "Role", "Date", "Signature") * 2
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>IVIG/SCIG clinical decision support: knowledge {esc(version)}</title>
<style>{STYLE}</style></head><body>
<header><h1>IVIG/SCIG clinical decision support: the knowledge in force</h1>
<table class="meta">
<tr><td>Knowledge version</td><td><code>{esc(version)}</code></td></tr>
<tr><td>Generated</td><td>{esc(generated)}</td></tr>
<tr><td>Site threshold overrides</td><td>{overridden}</td></tr>
<tr><td>Rules</td><td>{len(by_topic)} topics, {len(examples)} with an example card</td></tr>
</table>
<h2>Sign-off</h2>
<p>Reviewed and approved by the pharmacy and therapeutics committee for knowledge version
<code>{esc(version)}</code>.</p>
<div class="signoff">{signoff}</div></header>
<nav><h2>Topics</h2><ol>{contents}</ol></nav>
<main><h2>Rules</h2>
<p>Each rule's description quotes the knowledge files' own numbers; the thresholds table under it
gives the values in force at this site. Codes marked <span class="unverified">UNVERIFIED</span>
are ones the clinical reference could not confirm.</p>{topics}
<h2 id="formulary">Site formulary</h2>{_formulary(kb, site_formulary(kb, env, overrides))}
<h2 id="catalogue">Product catalogue</h2>{_catalogue(kb)}
<h2 id="valuesets">Every value set</h2>{appendix}</main>
</body></html>
"""


def write_knowledge_document(
    path: Path,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    fixtures_dir: Path | None = None,
) -> None:
    """Write the knowledge document to ``path`` (``ivig-cds knowledge report -o FILE.html``)."""
    path.write_text(knowledge_document(env, overrides, fixtures_dir), encoding="utf-8")
