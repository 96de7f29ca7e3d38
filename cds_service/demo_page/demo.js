// The demo order-entry page: a CDS Hooks 2.0 client of this service, as an EHR is one.
// It builds draft MedicationRequests from the knowledge's orderables (/demo/choices), sends
// order-select, order-sign and patient-view with the prefetch an EHR would (/demo/patients/...),
// shows the cards as a popup does, applies accepted suggestions to its drafts, re-checks, and
// sends feedback. Text from a card or a record reaches the page as text (textContent) or as
// Markdown rendered by marked and sanitised by DOMPurify; the page's CSP allows no inline script.
"use strict";

const UCUM = "http://unitsofmeasure.org";
const FREQUENCIES = {
  daily: { text: "once daily", period: 1, unit: "d" },
  once: { text: "once", period: 1, unit: "d" },
  weekly: { text: "every week", period: 1, unit: "wk" },
  "2-weekly": { text: "every 2 weeks", period: 2, unit: "wk" },
  "3-weekly": { text: "every 3 weeks", period: 3, unit: "wk" },
  "4-weekly": { text: "every 4 weeks", period: 4, unit: "wk" },
};
const ROUTE_ABBREVIATIONS = { IV: "IV", SC: "SC" };

const state = {
  choices: null,
  patients: [],
  record: null, // the chosen patient: id, summary, prefetch per service
  drafts: [], // FHIR resources on the order pad
  composedId: null, // the draft the form made
  nextId: 1,
  overriddenTopics: new Map(), // topic code -> reason text (Epic remembers overrides by topic)
};

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------ utilities

function uuid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // also where randomUUID is not
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fillList(list, items, emptyText) {
  list.replaceChildren(...(items.length ? items.map((t) => element("li", t)) : [element("li", emptyText, "empty")]));
}

function status(message, isError) {
  const box = $("status");
  box.textContent = message;
  box.className = isError ? "error" : "";
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(problem(response.status, body));
  return body;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(problem(response.status, answer));
  return answer;
}

function problem(code, body) {
  const issues = (body && body.issue) || [];
  const said = issues.map((i) => i.diagnostics).filter(Boolean).join("; ");
  return `HTTP ${code}${said ? `: ${said}` : ""}`;
}

// Markdown from a card: rendered, then sanitised; links open in a new tab without an opener.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

function renderMarkdown(container, markdown) {
  const html = marked.parse(markdown || "", { async: false, gfm: true });
  container.innerHTML = DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch (_) {
    return null;
  }
}

// ------------------------------------------------------------------------------ the order

function composeOrder(id) {
  const product = state.choices.products.find((p) => p.id === $("product").value);
  const routeKey = $("route").value;
  const route = state.choices.routes[routeKey];
  const frequencyKey = $("frequency").value;
  const frequency = FREQUENCIES[frequencyKey];
  const dose = Number($("dose").value);
  const unit = $("dose-unit").value;
  const days = Math.max(1, Math.round(Number($("days").value)));
  const reason = state.choices.reasons.find((r) => r.id === $("reason").value);
  const repeat = { frequency: 1, period: frequency.period, periodUnit: frequency.unit };
  let when;
  if (frequencyKey === "once") {
    repeat.count = 1;
    when = "once";
  } else if (frequencyKey === "daily") {
    repeat.count = days;
    when = `once daily for ${days} day${days === 1 ? "" : "s"}`;
  } else {
    repeat.boundsDuration = { value: days, unit: "d", system: UCUM, code: "d" };
    when = `${frequency.text} for ${days} days`;
  }
  const medication = { text: product.text };
  if (product.coding.length) medication.coding = product.coding;
  const order = {
    resourceType: "MedicationRequest",
    id,
    status: "draft",
    intent: "order",
    medicationCodeableConcept: medication,
    subject: { reference: `Patient/${state.record.patientId}` },
    authoredOn: state.choices.today,
    dosageInstruction: [
      {
        sequence: 1,
        text: `${dose} ${unit} ${ROUTE_ABBREVIATIONS[routeKey]} ${when}`,
        timing: { repeat },
        route: { coding: route.coding, text: route.text },
        doseAndRate: [{ doseQuantity: { value: dose, unit, system: UCUM, code: unit } }],
      },
    ],
  };
  if (reason) order.reasonCode = [{ coding: reason.coding, text: reason.text }];
  return order;
}

function previewOrder() {
  if (!state.choices) return;
  const frequencyKey = $("frequency").value;
  const dose = Number($("dose").value);
  const unit = $("dose-unit").value;
  const days = Math.max(1, Math.round(Number($("days").value)));
  let text = "";
  if (frequencyKey === "daily" && dose > 0) {
    const total = Math.round(dose * days * 1000) / 1000;
    text = `Course: ${dose} ${unit} × ${days} = ${total} ${unit} in all.`;
  } else if (frequencyKey === "once" && dose > 0) {
    text = `One administration of ${dose} ${unit}.`;
  }
  $("order-preview").textContent = text;
}

function describeQuantity(q) {
  return q ? `${q.comparator || ""}${q.value} ${q.unit || q.code || ""}`.trim() : "";
}

const PERIOD_UNITS = { min: "minute", h: "hour", d: "day", wk: "week", mo: "month", a: "year" };

function describeTiming(timing) {
  const r = (timing && timing.repeat) || {};
  const parts = [];
  if (r.period && r.periodUnit) {
    const unit = PERIOD_UNITS[r.periodUnit] || r.periodUnit;
    const times = r.frequency && r.frequency !== 1 ? `${r.frequency} times ` : "";
    parts.push(`${times}every ${r.period === 1 ? unit : `${r.period} ${unit}s`}`);
  }
  if (r.count) parts.push(`${r.count} administration${r.count === 1 ? "" : "s"}`);
  if (r.boundsDuration) parts.push(`for ${describeQuantity(r.boundsDuration)}`);
  return parts.join(", ");
}

function describeOrder(resource) {
  const lines = [];
  if (resource.resourceType === "MedicationRequest") {
    const concept = resource.medicationCodeableConcept || {};
    lines.push(concept.text || (concept.coding || []).map((c) => c.display || c.code).join(", ") || "(medication not named)");
    for (const dosage of resource.dosageInstruction || []) {
      const dr = (dosage.doseAndRate || [])[0] || {};
      const bits = [];
      if (dr.doseQuantity) bits.push(`dose ${describeQuantity(dr.doseQuantity)}`);
      if (dosage.route) bits.push(dosage.route.text || "");
      const timing = describeTiming(dosage.timing);
      if (timing) bits.push(timing);
      if (dr.rateRange) bits.push(`rate ${describeQuantity(dr.rateRange.low)} to ${describeQuantity(dr.rateRange.high)}`);
      if (dr.rateQuantity) bits.push(`rate ${describeQuantity(dr.rateQuantity)}`);
      lines.push(bits.filter(Boolean).join("; "));
      for (const instruction of dosage.additionalInstruction || []) lines.push(`Instruction: ${instruction.text || ""}`);
    }
    for (const reason of resource.reasonCode || []) lines.push(`Reason: ${reason.text || ""}`);
  } else {
    const code = resource.code || {};
    lines.push(code.text || (code.coding || []).map((c) => c.display || c.code).join(", ") || resource.resourceType);
  }
  for (const note of resource.note || []) lines.push(`Note: ${note.text || ""}`);
  return lines;
}

function renderDrafts() {
  const list = $("drafts");
  list.dataset.version = String(Number(list.dataset.version) + 1);
  if (!state.drafts.length) {
    list.replaceChildren(element("li", "No draft orders.", "empty"));
  } else {
    list.replaceChildren(
      ...state.drafts.map((resource) => {
        const item = element("li");
        item.dataset.ref = `${resource.resourceType}/${resource.id}`;
        const [first, ...rest] = describeOrder(resource);
        item.append(element("strong", first), element("span", ` ${resource.resourceType}/${resource.id}`, "ref"));
        for (const line of rest) item.append(element("div", line, "line"));
        const remove = element("button", "Remove", "remove");
        remove.type = "button";
        remove.addEventListener("click", () => {
          state.drafts = state.drafts.filter((r) => r !== resource);
          renderDrafts();
          if (state.drafts.some((r) => r.resourceType === "MedicationRequest")) orderSelect();
        });
        item.append(remove);
        return item;
      })
    );
  }
  $("sign-orders").disabled = !state.drafts.length;
}

// The EHR's part of accepting a suggestion: apply each action to the drafts.
function applyActions(actions) {
  for (const action of actions || []) {
    if (action.type === "create" && action.resource) {
      const resource = structuredClone(action.resource);
      if (!resource.id) resource.id = `demo-${state.nextId++}`;
      state.drafts.push(resource);
    } else if (action.type === "update" && action.resource) {
      const resource = structuredClone(action.resource);
      const at = state.drafts.findIndex((r) => r.resourceType === resource.resourceType && r.id === resource.id);
      if (at >= 0) state.drafts[at] = resource;
      else state.drafts.push(resource);
    } else if (action.type === "delete") {
      // CDS Hooks 2.0 resourceId (a relative reference); 1.0's id in resource is deprecated.
      const target = action.resourceId || action.resource;
      const refs = Array.isArray(target) ? target : [target];
      state.drafts = state.drafts.filter((r) => !refs.includes(`${r.resourceType}/${r.id}`));
    }
  }
  renderDrafts();
}

// ------------------------------------------------------------------------------ hook calls

function hookRequest(hook, context) {
  const service = state.choices.services[hook];
  return {
    service,
    body: {
      hook,
      hookInstance: uuid(),
      context: { userId: "Practitioner/demo-clinician", patientId: state.record.patientId, ...context },
      prefetch: state.record.prefetch[service],
    },
  };
}

function draftBundle() {
  return { resourceType: "Bundle", type: "collection", entry: state.drafts.map((resource) => ({ resource })) };
}

async function callHook(hook, context, target) {
  const { service, body } = hookRequest(hook, context);
  status(`Calling ${service} …`);
  try {
    const answer = await postJson(`../cds-services/${service}`, body);
    renderCards(target, answer.cards || [], service, hook);
    status(`${hook}: ${answer.cards.length} card${answer.cards.length === 1 ? "" : "s"}.`);
    return answer.cards || [];
  } catch (error) {
    status(`${hook} failed: ${error.message}`, true);
    target.dataset.calls = String(Number(target.dataset.calls) + 1);
    return null;
  }
}

function orderSelect() {
  const selections = state.drafts
    .filter((r) => r.resourceType === "MedicationRequest")
    .map((r) => `MedicationRequest/${r.id}`);
  $("cards-hook").textContent = "order-select";
  return callHook("order-select", { draftOrders: draftBundle(), selections }, $("cards"));
}

async function orderSign() {
  $("cards-hook").textContent = "order-sign";
  const cards = await callHook("order-sign", { draftOrders: draftBundle() }, $("cards"));
  if (cards === null) return;
  const blocking = cards.filter((c) => c.indicator === "critical" && !state.overriddenTopics.has(topicOf(c)));
  if (blocking.length) {
    status(`order-sign: ${blocking.length} critical card(s): accept a suggestion or override before signing.`, true);
    return;
  }
  const signed = $("signed");
  if (signed.querySelector(".empty")) signed.replaceChildren();
  for (const resource of state.drafts) {
    const [first, ...rest] = describeOrder(resource);
    const item = element("li");
    item.append(element("strong", first));
    for (const line of rest) item.append(element("div", line, "line"));
    signed.append(item);
  }
  state.drafts = [];
  state.composedId = null;
  renderDrafts();
  const repeats = cards.length ? "" : " (a card order-select showed within the repeat window is not shown again)";
  status(`Signed. order-sign answered ${cards.length} card${cards.length === 1 ? "" : "s"}${repeats}.`);
}

// ------------------------------------------------------------------------------ cards

function topicOf(card) {
  return (card.source && card.source.topic && card.source.topic.code) || "";
}

function renderCards(target, cards, service, hook) {
  target.dataset.calls = String(Number(target.dataset.calls) + 1);
  target.dataset.hook = hook;
  if (!cards.length) {
    target.replaceChildren(element("p", "No cards: nothing to show for this call.", "empty"));
    return;
  }
  target.replaceChildren(...cards.map((card) => renderCard(card, service, hook)));
}

function renderCard(card, service, hook) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  const indicator = ["info", "warning", "critical"].includes(card.indicator) ? card.indicator : "info";
  node.classList.add(indicator);
  node.dataset.uuid = card.uuid || "";
  node.dataset.topic = topicOf(card);
  node.querySelector(".indicator").textContent = indicator;
  node.querySelector(".summary").textContent = card.summary;
  const source = node.querySelector(".source");
  const url = card.source && safeUrl(card.source.url);
  source.append("Source: ");
  if (url) {
    const link = element("a", card.source.label);
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    source.append(link);
  } else {
    source.append(card.source ? card.source.label : "(none)");
  }
  if (card.detail) renderMarkdown(node.querySelector(".detail"), card.detail);
  else node.querySelector(".detail-box").remove();

  const suggestions = node.querySelector(".suggestions");
  for (const suggestion of card.suggestions || []) {
    const button = element("button", suggestion.label, "accept");
    button.type = "button";
    button.dataset.suggestion = suggestion.uuid || "";
    if (suggestion.isRecommended) button.classList.add("recommended");
    button.addEventListener("click", () => accept(card, suggestion, service, hook, node, button));
    suggestions.append(button);
  }
  for (const link of card.links || []) {
    const href = link.type === "absolute" ? safeUrl(link.url) : null;
    const item = href ? element("a", link.label) : element("span", `${link.label} (a SMART app: not launched here)`);
    if (href) {
      item.href = href;
      item.target = "_blank";
      item.rel = "noopener noreferrer";
    }
    node.querySelector(".links").append(item);
  }

  const reasons = node.querySelector(".override-reason");
  const coded = card.overrideReasons || [];
  reasons.append(element("option", coded.length ? "(choose a reason)" : "(no coded reasons: say why below)"));
  reasons.firstElementChild.value = "";
  coded.forEach((reason, i) => {
    const option = element("option", reason.display || reason.code);
    option.value = String(i);
    reasons.append(option);
  });
  const form = node.querySelector(".override-form");
  node.querySelector(".override").addEventListener("click", () => {
    form.hidden = !form.hidden;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    override(card, coded[Number(reasons.value)] || null, node.querySelector(".override-comment").value.trim(), service, node);
  });

  const earlier = state.overriddenTopics.get(topicOf(card));
  if (earlier !== undefined && topicOf(card)) {
    node.classList.add("dismissed");
    showOutcome(node, `Overridden earlier in this session (${earlier}): shown collapsed.`);
  }
  return node;
}

function showOutcome(node, text) {
  const outcome = node.querySelector(".outcome");
  outcome.textContent = text;
  outcome.hidden = false;
}

async function sendFeedback(service, item) {
  try {
    await postJson(`../cds-services/${service}/feedback`, {
      feedback: [{ ...item, outcomeTimestamp: new Date().toISOString() }],
    });
    return true;
  } catch (error) {
    status(`Feedback was not stored: ${error.message}`, true);
    return false;
  }
}

async function accept(card, suggestion, service, hook, node, button) {
  button.disabled = true;
  node.classList.add("busy");
  applyActions(suggestion.actions);
  showOutcome(node, `Accepted: ${suggestion.label}`);
  const stored = await sendFeedback(service, {
    card: card.uuid,
    outcome: "accepted",
    acceptedSuggestions: [{ id: suggestion.uuid }],
  });
  if (hook === "patient-view") {
    node.classList.remove("busy");
    return;
  }
  if (stored) await orderSelect(); // the orders changed: check them again
}

async function override(card, reason, comment, service, node) {
  if (!reason && !comment) {
    status("Choose a reason or write a comment to override.", true);
    return;
  }
  const overrideReason = {};
  if (reason) overrideReason.reason = reason;
  if (comment) overrideReason.userComment = comment;
  if (await sendFeedback(service, { card: card.uuid, outcome: "overridden", overrideReason })) {
    const said = [reason && (reason.display || reason.code), comment].filter(Boolean).join("; ");
    if (topicOf(card)) state.overriddenTopics.set(topicOf(card), said);
    node.classList.add("dismissed");
    node.querySelector(".override-form").hidden = true;
    showOutcome(node, `Overridden: ${said}`);
    status("Override recorded.");
  }
}

// ------------------------------------------------------------------------------ set-up

function fillPatients() {
  const filter = $("patient-filter").value.trim().toLowerCase();
  const select = $("patient");
  const groups = new Map();
  for (const patient of state.patients) {
    const label = `${patient.key.split("/")[1]}: ${patient.purpose}`;
    if (filter && !label.toLowerCase().includes(filter)) continue;
    if (!groups.has(patient.group)) groups.set(patient.group, element("optgroup"));
    const group = groups.get(patient.group);
    group.label = patient.group;
    const option = element("option", label);
    option.value = patient.key;
    option.title = label;
    group.append(option);
  }
  select.replaceChildren(...groups.values());
  if (state.record) select.value = state.record.key;
}

async function choosePatient(key) {
  try {
    state.record = await getJson(`patients/${key}`);
  } catch (error) {
    status(`Could not load the patient: ${error.message}`, true);
    return;
  }
  state.drafts = [];
  state.composedId = null;
  state.overriddenTopics.clear();
  renderDrafts();
  $("cards").replaceChildren(element("p", "Select an order to see its cards.", "empty"));
  const s = state.record.summary;
  $("summary").hidden = false;
  $("patient-name").textContent = s.name;
  $("patient-headline").textContent = s.headline;
  $("patient-purpose").textContent = state.record.purpose;
  const moved = state.record.datesMovedByDays;
  $("dates-moved").textContent = moved
    ? `The record's dates are moved by ${moved} days so that it reads as of today.`
    : "";
  fillList($("summary-observations"), s.observations, "None on record.");
  fillList($("summary-conditions"), s.conditions, "None on record.");
  fillList($("summary-allergies"), s.allergies, "None on record.");
  fillList($("summary-medications"), s.medications, "None on record.");
  await callHook("patient-view", {}, $("pv-cards"));
}

function fillProductRoutes() {
  const product = state.choices.products.find((p) => p.id === $("product").value);
  const route = $("route");
  route.replaceChildren(
    ...product.routes.map((key) => {
      const option = element("option", state.choices.routes[key].text);
      option.value = key;
      return option;
    })
  );
}

async function start() {
  try {
    [state.choices, { patients: state.patients }] = await Promise.all([getJson("choices"), getJson("patients")]);
  } catch (error) {
    status(`The page could not start: ${error.message}`, true);
    return;
  }
  $("product").replaceChildren(
    ...state.choices.products.map((p) => {
      const notes = [p.discontinued ? "discontinued" : "", p.stocked ? "" : "not stocked here"].filter(Boolean);
      const option = element("option", notes.length ? `${p.text} (${notes.join(", ")})` : p.text);
      option.value = p.id;
      return option;
    })
  );
  $("frequency").replaceChildren(
    ...Object.entries(FREQUENCIES).map(([key, f]) => {
      const option = element("option", f.text);
      option.value = key;
      return option;
    })
  );
  const none = element("option", "(no reason given)");
  none.value = "";
  $("reason").replaceChildren(
    none,
    ...state.choices.reasons.map((r) => {
      const option = element("option", r.text);
      option.value = r.id;
      return option;
    })
  );
  fillProductRoutes();
  fillPatients();
  previewOrder();
  $("product").addEventListener("change", fillProductRoutes);
  for (const id of ["dose", "dose-unit", "frequency", "days"]) $(id).addEventListener("input", previewOrder);
  $("patient-filter").addEventListener("input", fillPatients);
  $("patient").addEventListener("change", (event) => choosePatient(event.target.value));
  $("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!state.record) {
      status("Pick a patient first.", true);
      return;
    }
    if (!state.composedId || !state.drafts.some((r) => r.id === state.composedId)) {
      state.composedId = `demo-${state.nextId++}`;
    }
    const order = composeOrder(state.composedId);
    const at = state.drafts.findIndex((r) => r.resourceType === "MedicationRequest" && r.id === order.id);
    if (at >= 0) state.drafts[at] = order;
    else state.drafts.push(order);
    renderDrafts();
    orderSelect();
  });
  $("sign-orders").addEventListener("click", orderSign);
  document.body.dataset.ready = "true";
  status("Ready: pick a patient, then an order.");
}

document.addEventListener("DOMContentLoaded", start);
