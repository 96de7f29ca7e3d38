// The demo order-entry page: a CDS Hooks 2.0 client of this service, as an EHR is one.
// It builds draft MedicationRequests from the knowledge's orderables (/demo/choices), sends
// order-select, order-sign and patient-view with the prefetch an EHR would (/demo/patients/...),
// shows the cards as a popup does, applies accepted suggestions to its drafts, re-checks, and
// sends feedback. Text from a card or a record reaches the page as text (textContent) or as
// Markdown rendered by marked and sanitised by DOMPurify; the page's CSP allows no inline script.
"use strict";

const UCUM = "http://unitsofmeasure.org";
// days: the default "for (days)" when the frequency is picked
const FREQUENCIES = {
  daily: { text: "once daily", period: 1, unit: "d", days: 5 },
  once: { text: "once", period: 1, unit: "d", days: 1 },
  weekly: { text: "every week", period: 1, unit: "wk", days: 28 },
  "2-weekly": { text: "every 2 weeks", period: 2, unit: "wk", days: 28 },
  "3-weekly": { text: "every 3 weeks", period: 3, unit: "wk", days: 63 },
  "4-weekly": { text: "every 4 weeks", period: 4, unit: "wk", days: 84 },
};
const PERIOD_DAYS = { d: 1, wk: 7 };
const PERIOD_UNITS = { min: "minute", h: "hour", d: "day", wk: "week", mo: "month", a: "year" };
// What discontinuing a record's order sets its status to (the EHR's part of a delete action).
const STOPPED = { MedicationRequest: "stopped", MedicationStatement: "stopped", ServiceRequest: "revoked" };

const state = {
  choices: null,
  patients: [],
  record: null, // the chosen patient: id, summary, prefetch per service, the scenario's orders
  drafts: [], // FHIR resources on the order pad
  composedId: null, // the draft the form made
  composedFromForm: null, // the form's values when that draft was last made or read
  discontinued: [], // record orders a delete action stopped: "Type/id — what it was"
  selected: new Set(), // the orders being acted on ("Type/id"): order-select's selections
  nextId: 1,
  // Overridden cards, by topic code and summary: a card of the same topic about something else
  // (another product, another risk) is shown again.
  overridden: new Map(),
  pristinePrefetch: null, // the record's prefetch as loaded, before any discontinuation
  patientCalls: 0, // bumped when the patient changes: an answer for the one before is dropped
  latestCall: new Map(), // panel id -> the number of its latest call: an older answer is dropped
  calls: 0,
  selectAnswered: false, // order-select has answered for these drafts (what Sign may say)
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

function option(value, text) {
  const node = element("option", text);
  node.value = value;
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

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
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

// ------------------------------------------------------------------------------ the order form

// days: a whole number, or "" for an order with no end (maintenance therapy)
function formValues() {
  const days = $("days").value.trim();
  return {
    product: $("product").value,
    dose: Number($("dose").value),
    unit: $("dose-unit").value,
    route: $("route").value,
    frequency: $("frequency").value,
    days: days === "" ? "" : Math.max(1, Math.round(Number(days))),
    reason: $("reason").value,
  };
}

function sameValues(a, b) {
  return Boolean(a && b) && Object.keys(a).every((key) => a[key] === b[key]);
}

function composeOrder(id, values) {
  const product = state.choices.products.find((p) => p.id === values.product);
  const route = state.choices.routes[values.route];
  const frequency = FREQUENCIES[values.frequency];
  const reason = state.choices.reasons.find((r) => r.id === values.reason);
  const repeat = { frequency: 1, period: frequency.period, periodUnit: frequency.unit };
  let when;
  if (values.frequency === "once") {
    repeat.count = 1;
    when = "once";
  } else if (values.days === "") {
    when = `${frequency.text}, no end date`;
  } else if (values.frequency === "daily") {
    repeat.count = values.days;
    when = `once daily for ${plural(values.days, "day")}`;
  } else {
    repeat.boundsDuration = { value: values.days, unit: "d", system: UCUM, code: "d" };
    when = `${frequency.text} for ${plural(values.days, "day")}`;
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
        text: `${values.dose} ${values.unit} ${values.route} ${when}`,
        timing: { repeat },
        route: { coding: route.coding, text: route.text },
        doseAndRate: [{ doseQuantity: { value: values.dose, unit: values.unit, system: UCUM, code: values.unit } }],
      },
    ],
  };
  if (reason) order.reasonCode = [{ coding: reason.coding, text: reason.text }];
  return order;
}

// The form's values for a draft a suggestion changed (a switched product, a new dose), so that
// what the form shows is the order on the pad; null where the draft says something the form
// cannot (then "Select" enters the form's order anew).
function valuesOf(order) {
  const dosage = (order.dosageInstruction || [])[0] || {};
  const dose = ((dosage.doseAndRate || [])[0] || {}).doseQuantity;
  const repeat = (dosage.timing && dosage.timing.repeat) || {};
  const text = ((order.medicationCodeableConcept || {}).text || "").toLowerCase();
  const codes = ((order.medicationCodeableConcept || {}).coding || []).map((c) => `${c.system}|${c.code}`);
  let product = null;
  let longest = 0;
  for (const p of state.choices.products) {
    if (p.coding.some((c) => codes.includes(`${c.system}|${c.code}`))) {
      product = p;
      break;
    }
    for (const name of p.names) {
      if (name.length > longest && text.includes(name.toLowerCase())) {
        product = p;
        longest = name.length;
      }
    }
  }
  const routeCodes = ((dosage.route || {}).coding || []).map((c) => c.code);
  const route = Object.keys(state.choices.routes).find((key) =>
    state.choices.routes[key].coding.some((c) => routeCodes.includes(c.code))
  );
  const frequency = Object.keys(FREQUENCIES).find((key) => {
    const f = FREQUENCIES[key];
    if (f.period !== repeat.period || f.unit !== repeat.periodUnit || (repeat.frequency || 1) !== 1) return false;
    return key === "once" ? repeat.count === 1 : !(key === "daily" && repeat.count === 1);
  });
  const bounds = repeat.boundsDuration && repeat.boundsDuration.code === "d" ? repeat.boundsDuration.value : undefined;
  const days = frequency === "once" ? 1 : (frequency === "daily" ? repeat.count : bounds) ?? "";
  const reasonCodes = (order.reasonCode || []).flatMap((r) => (r.coding || []).map((c) => c.code));
  const reason = state.choices.reasons.find((r) => r.coding.some((c) => reasonCodes.includes(c.code)));
  if (repeat.boundsDuration && bounds === undefined) return null; // a duration not in days
  if (!product || !route || !frequency || !dose || !["g/kg", "g"].includes(dose.code)) return null;
  return {
    product: product.id,
    dose: dose.value,
    unit: dose.code,
    route,
    frequency,
    days,
    reason: reason ? reason.id : "",
  };
}

function showValues(values) {
  $("product").value = values.product;
  fillProductRoutes();
  $("dose").value = String(values.dose);
  $("dose-unit").value = values.unit;
  $("route").value = values.route;
  $("frequency").value = values.frequency;
  $("days").value = String(values.days);
  $("reason").value = values.reason;
  previewOrder();
}

function previewOrder() {
  if (!state.choices) return;
  const { dose, unit, frequency, days } = formValues();
  const f = FREQUENCIES[frequency];
  let text = "";
  if (!(dose > 0)) {
    text = "Enter a dose.";
  } else if (frequency === "once") {
    text = `One administration of ${dose} ${unit}.`;
  } else if (days === "") {
    text = `${dose} ${unit} ${f.text}, no end date.`;
  } else {
    const every = f.period * PERIOD_DAYS[f.unit];
    const count = Math.floor((days - 1) / every) + 1; // day 1, then every period within the days
    const total = Math.round(dose * count * 1000) / 1000;
    text = `${plural(count, "administration")} of ${dose} ${unit} in ${plural(days, "day")} = ${total} ${unit} in all.`;
    if (count === 1 && frequency !== "daily") text += ` The ${f.text} order covers one administration only.`;
  }
  $("order-preview").textContent = text;
}

function fillProductRoutes() {
  const product = state.choices.products.find((p) => p.id === $("product").value);
  $("route").replaceChildren(...product.routes.map((key) => option(key, state.choices.routes[key].text)));
}

// ------------------------------------------------------------------------------ the order pad

function describeQuantity(q) {
  return q ? `${q.comparator || ""}${q.value} ${q.unit || q.code || ""}`.trim() : "";
}

function describeTiming(timing) {
  const r = (timing && timing.repeat) || {};
  if (r.count === 1 && !r.boundsDuration) return "once";
  const parts = [];
  if (r.period && r.periodUnit) {
    const unit = PERIOD_UNITS[r.periodUnit] || r.periodUnit;
    const times = r.frequency && r.frequency !== 1 ? `${r.frequency} times ` : "";
    parts.push(`${times}every ${r.period === 1 ? unit : `${r.period} ${unit}s`}`);
  }
  if (r.count) parts.push(plural(r.count, "administration"));
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
      if (dr.rateRatio) bits.push(`rate ${describeQuantity(dr.rateRatio.numerator)} per ${describeQuantity(dr.rateRatio.denominator)}`);
      lines.push(bits.filter(Boolean).join("; "));
      if (dosage.text) lines.push(`Sig: ${dosage.text}`);
      for (const instruction of dosage.additionalInstruction || []) lines.push(`Instruction: ${instruction.text || ""}`);
    }
    for (const reason of resource.reasonCode || []) lines.push(`Reason: ${reason.text || ""}`);
  } else {
    const code = resource.code || {};
    lines.push(code.text || (code.coding || []).map((c) => c.display || c.code).join(", ") || resource.resourceType);
  }
  // A note that repeats an instruction already listed is not listed twice.
  const listed = new Set(lines.map((line) => line.replace(/^[A-Za-z]+: /, "")));
  for (const note of resource.note || []) if (!listed.has(note.text || "")) lines.push(`Note: ${note.text || ""}`);
  return lines;
}

function orderItem(resource) {
  const item = element("li");
  item.dataset.ref = `${resource.resourceType}/${resource.id}`;
  const [first, ...rest] = describeOrder(resource);
  item.append(element("strong", first), element("span", ` ${resource.resourceType}/${resource.id}`, "ref"));
  for (const line of rest) item.append(element("div", line, "line"));
  return item;
}

function renderDrafts() {
  const list = $("drafts");
  list.dataset.version = String(Number(list.dataset.version) + 1);
  const items = state.drafts.map((resource) => {
    const item = orderItem(resource);
    const remove = element("button", "Remove", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => removeDraft(resource));
    item.append(remove);
    return item;
  });
  for (const stopped of state.discontinued) items.push(element("li", `Discontinued: ${stopped}`, "stopped"));
  list.replaceChildren(...(items.length ? items : [element("li", "No draft orders.", "empty")]));
  $("sign-orders").disabled = !state.drafts.length;
}

function refOf(resource) {
  return `${resource.resourceType}/${resource.id}`;
}

// order-select's selections: the orders being acted on that are still on the pad, else every
// draft medication order.
function currentSelections() {
  const onPad = state.drafts.map(refOf);
  const chosen = [...state.selected].filter((ref) => onPad.includes(ref));
  return chosen.length ? chosen : state.drafts.filter((r) => r.resourceType === "MedicationRequest").map(refOf);
}

// Check the pad again; with no order left to select, clear the cards (they were about an order
// no longer on the pad, and none of their suggestions applies).
function recheck() {
  if (currentSelections().length) return orderSelect();
  $("cards").dataset.calls = String(Number($("cards").dataset.calls) + 1);
  $("cards").replaceChildren(element("p", "No order to check on the pad: the cards are cleared.", "empty"));
  status("No order to check on the pad: the cards are cleared.");
  return Promise.resolve([]);
}

function removeDraft(resource) {
  state.drafts = state.drafts.filter((r) => r !== resource);
  renderDrafts();
  recheck();
}

// A delete of an order that is not a draft discontinues the record's order, as an EHR does on
// accepting "Stop ...": its status changes in every prefetch the page sends from now on.
function discontinueInRecord(ref) {
  let found = null;
  for (const keys of Object.values(state.record.prefetch)) {
    for (const bundle of Object.values(keys)) {
      for (const entry of (bundle && bundle.entry) || []) {
        const r = entry.resource;
        if (`${r.resourceType}/${r.id}` !== ref) continue;
        r.status = STOPPED[r.resourceType] || "stopped";
        found = r;
      }
    }
  }
  if (found) renderMedications();
  return found;
}

// The record's medication orders as the prefetch the page sends has them (a discontinued one
// shows its new status).
function renderMedications() {
  const bundle = state.record.prefetch[state.choices.services["order-select"]].medicationRequests;
  const orders = ((bundle && bundle.entry) || []).map((e) => e.resource).filter((r) => r.status !== "entered-in-error");
  fillList($("summary-medications"), orders.map((r) => `${describeOrder(r)[0]} (${r.status})`), "None on record.");
}

// The EHR's part of accepting a suggestion: apply each action to the drafts (or the record).
// Returns what could not be applied.
function applyActions(actions) {
  const notApplied = [];
  for (const action of actions || []) {
    if (action.type === "create" && action.resource) {
      const resource = structuredClone(action.resource);
      if (!resource.id) resource.id = `demo-${state.nextId++}`;
      state.drafts.push(resource);
      if (resource.resourceType === "MedicationRequest") {
        state.selected.add(refOf(resource)); // a switched or new medication order is acted on
        if (!state.drafts.some((r) => r.id === state.composedId)) state.composedId = resource.id;
      }
    } else if (action.type === "update" && action.resource) {
      const resource = structuredClone(action.resource);
      const at = state.drafts.findIndex((r) => r.resourceType === resource.resourceType && r.id === resource.id);
      if (at >= 0) state.drafts[at] = resource;
      else state.drafts.push(resource);
    } else if (action.type === "delete") {
      // CDS Hooks 2.0 resourceId (a relative reference); 1.0's id in resource is deprecated.
      const target = action.resourceId || action.resource;
      for (const ref of Array.isArray(target) ? target : [target]) {
        const before = state.drafts.length;
        state.drafts = state.drafts.filter((r) => refOf(r) !== ref);
        if (state.drafts.length < before) continue;
        const stopped = discontinueInRecord(ref);
        if (stopped) state.discontinued.push(`${ref} (${describeOrder(stopped)[0]}), status ${stopped.status}`);
        else notApplied.push(`${action.description || "delete"}: ${ref} is neither a draft nor on the record`);
      }
    } else {
      notApplied.push(`${action.description || action.type}: an action of type ${action.type} without what it needs`);
    }
  }
  const composed = state.drafts.find((r) => r.id === state.composedId);
  const values = composed && valuesOf(composed);
  if (values) showValues(values);
  state.composedFromForm = values || null; // null: "Select" enters the form's order anew
  renderDrafts();
  return notApplied;
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
  const patientCall = state.patientCalls;
  const call = ++state.calls;
  state.latestCall.set(target.id, call);
  // An answer for the patient before, or one overtaken by a newer call to the same panel (Select
  // pressed twice), is dropped: what the panel shows is the answer to what is on the pad now.
  const stale = () => patientCall !== state.patientCalls || state.latestCall.get(target.id) !== call;
  status(`Calling ${service} …`);
  target.classList.add("busy"); // no click on a card while its answer is being replaced
  try {
    const answer = await postJson(`../cds-services/${service}`, body);
    if (stale()) return null;
    const cards = answer.cards || [];
    renderCards(target, cards, service, hook);
    status(`${hook}: ${plural(cards.length, "card")}.`);
    return cards;
  } catch (error) {
    if (stale()) return null;
    status(`${hook} failed: ${error.message}`, true);
    target.dataset.calls = String(Number(target.dataset.calls) + 1);
    return null;
  } finally {
    if (state.latestCall.get(target.id) === call) target.classList.remove("busy"); // none newer
  }
}

async function orderSelect() {
  $("cards-hook").textContent = "order-select";
  const cards = await callHook("order-select", { draftOrders: draftBundle(), selections: currentSelections() }, $("cards"));
  if (cards !== null) state.selectAnswered = true;
  return cards;
}

async function orderSign() {
  $("cards-hook").textContent = "order-sign";
  const cards = await callHook("order-sign", { draftOrders: draftBundle() }, $("cards"));
  if (cards === null) return;
  const blocking = cards.filter((c) => c.indicator === "critical" && !state.overridden.has(overrideKey(c)));
  if (blocking.length) {
    status(`order-sign: ${plural(blocking.length, "critical card")}: accept a suggestion or override before signing.`, true);
    return;
  }
  const signed = $("signed");
  if (signed.querySelector(".empty")) signed.replaceChildren();
  for (const resource of state.drafts) signed.append(orderItem(resource));
  state.drafts = [];
  state.selected.clear();
  state.composedId = null;
  state.composedFromForm = null;
  renderDrafts();
  const repeats =
    !cards.length && state.selectAnswered
      ? " (a card order-select showed within the repeat window is not shown again)"
      : "";
  state.selectAnswered = false;
  status(`Signed. order-sign answered ${plural(cards.length, "card")}${repeats}.`);
}

// ------------------------------------------------------------------------------ cards

function topicOf(card) {
  return (card.source && card.source.topic && card.source.topic.code) || "";
}

function overrideKey(card) {
  return `${topicOf(card)}\n${card.summary}`;
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
  reasons.append(option("", coded.length ? "(choose a reason, or say why below)" : "(no coded reasons: say why below)"));
  coded.forEach((reason, i) => reasons.append(option(String(i), reason.display || reason.code)));
  const form = node.querySelector(".override-form");
  node.querySelector(".override").addEventListener("click", () => {
    form.hidden = !form.hidden;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = reasons.value === "" ? null : coded[Number(reasons.value)];
    override(card, reason, node.querySelector(".override-comment").value.trim(), service, node);
  });

  const earlier = state.overridden.get(overrideKey(card));
  if (earlier !== undefined) {
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

// null when stored, else what went wrong
async function sendFeedback(service, item) {
  try {
    await postJson(`../cds-services/${service}/feedback`, {
      feedback: [{ ...item, outcomeTimestamp: new Date().toISOString() }],
    });
    return null;
  } catch (error) {
    return `the feedback was not stored (${error.message})`;
  }
}

async function accept(card, suggestion, service, hook, node, button) {
  button.disabled = true;
  const notApplied = applyActions(suggestion.actions);
  showOutcome(node, notApplied.length ? `Not applied: ${notApplied.join("; ")}` : `Accepted: ${suggestion.label}`);
  const failed = await sendFeedback(service, {
    card: card.uuid,
    outcome: "accepted",
    acceptedSuggestions: [{ id: suggestion.uuid }],
  });
  // The orders (or the record) changed: check them again, whatever became of the feedback.
  if (hook !== "patient-view") await recheck();
  const problems = [...notApplied, ...(failed ? [failed] : [])];
  if (problems.length) status(`Accepted "${suggestion.label}", but ${problems.join("; ")}.`, true);
}

async function override(card, reason, comment, service, node) {
  if (!reason && !comment) {
    status("Choose a reason or write a comment to override.", true);
    return;
  }
  const overrideReason = {};
  if (reason) overrideReason.reason = reason;
  if (comment) overrideReason.userComment = comment;
  const failed = await sendFeedback(service, { card: card.uuid, outcome: "overridden", overrideReason });
  if (failed) {
    status(`Not overridden: ${failed}.`, true);
    return;
  }
  const said = [reason && (reason.display || reason.code), comment].filter(Boolean).join("; ");
  state.overridden.set(overrideKey(card), said);
  node.classList.add("dismissed");
  node.querySelector(".override-form").hidden = true;
  showOutcome(node, `Overridden: ${said}`);
  status("Override recorded.");
}

// ------------------------------------------------------------------------------ set-up

function fillPatients() {
  const filter = $("patient-filter").value.trim().toLowerCase();
  const groups = new Map();
  for (const patient of state.patients) {
    const label = `${patient.key.split("/")[1]}: ${patient.purpose}`;
    if (filter && !label.toLowerCase().includes(filter)) continue;
    if (!groups.has(patient.group)) {
      const group = element("optgroup");
      group.label = patient.group;
      groups.set(patient.group, group);
    }
    const item = option(patient.key, label);
    item.title = label;
    groups.get(patient.group).append(item);
  }
  $("patient").replaceChildren(...groups.values());
  if (state.record) $("patient").value = state.record.key;
}

async function choosePatient(key) {
  const patientCall = ++state.patientCalls; // what is still on its way is for the one before
  $("cards").replaceChildren(element("p", "Loading the patient …", "empty"));
  $("pv-cards").replaceChildren(element("p", "Loading the patient …", "empty"));
  let record;
  try {
    record = await getJson(`patients/${key}`);
  } catch (error) {
    if (patientCall === state.patientCalls) status(`Could not load the patient: ${error.message}`, true);
    return;
  }
  if (patientCall !== state.patientCalls) return; // another patient was picked meanwhile
  state.record = record;
  state.pristinePrefetch = structuredClone(record.prefetch); // before any discontinuation
  state.drafts = [];
  state.discontinued = [];
  state.selected.clear();
  state.composedId = null;
  state.composedFromForm = null;
  state.overridden.clear();
  renderDrafts();
  $("cards").replaceChildren(element("p", "Select an order to see its cards.", "empty"));
  const s = state.record.summary;
  $("summary").hidden = false;
  $("patient-name").textContent = s.name;
  $("patient-headline").textContent = s.headline;
  $("patient-purpose").textContent = state.record.purpose;
  const moved = state.record.datesMovedByDays;
  $("dates-moved").textContent = moved ? `The record's dates are moved by ${moved} days so that it reads as of today.` : "";
  fillList($("summary-observations"), s.observations, "None on record.");
  fillList($("summary-conditions"), s.conditions, "None on record.");
  fillList($("summary-allergies"), s.allergies, "None on record.");
  renderMedications();
  const orders = state.record.scenarioOrders || [];
  $("load-scenario").hidden = !orders.length;
  $("load-scenario").textContent = `Load the scenario's ${plural(orders.length, "order")}`;
  await callHook("patient-view", {}, $("pv-cards"));
}

function loadScenarioOrders() {
  // The scenario afresh: its orders, and its record as it was (nothing discontinued).
  state.record.prefetch = structuredClone(state.pristinePrefetch);
  renderMedications();
  state.drafts = structuredClone(state.record.scenarioOrders);
  state.discontinued = [];
  state.selected = new Set(state.record.scenarioSelections);
  const composed = state.drafts.find((r) => r.resourceType === "MedicationRequest");
  state.composedId = composed ? composed.id : null;
  const values = composed && valuesOf(composed);
  if (values) showValues(values);
  state.composedFromForm = values || null;
  renderDrafts();
  orderSelect();
}

// What only a suggestion puts on an immune globulin order: a rate, an instruction, a note.
function hasAcceptedChanges(order) {
  const dosages = order.dosageInstruction || [];
  const rated = dosages.some((d) => (d.doseAndRate || []).some((r) => r.rateRange || r.rateQuantity || r.rateRatio));
  return rated || dosages.some((d) => (d.additionalInstruction || []).length) || (order.note || []).length > 0;
}

function selectOrder(event) {
  event.preventDefault();
  if (!state.record) {
    status("Pick a patient first.", true);
    return;
  }
  const values = formValues();
  const current = state.drafts.find((r) => r.id === state.composedId);
  if (current && sameValues(values, state.composedFromForm)) {
    orderSelect(); // nothing edited: check the order as it stands, accepted changes and all
    return;
  }
  if (!current) state.composedId = `demo-${state.nextId++}`;
  state.selected.add(`MedicationRequest/${state.composedId}`);
  const order = composeOrder(state.composedId, values);
  const dropped = current && hasAcceptedChanges(current);
  const at = state.drafts.findIndex((r) => r.id === order.id);
  if (at >= 0) state.drafts[at] = order;
  else state.drafts.push(order);
  state.composedFromForm = values;
  renderDrafts();
  orderSelect().then(() => {
    if (dropped) {
      status("Entered anew from the form: rates and instructions accepted for the earlier version were for that order and are not kept; the cards are for the order as entered now.");
    }
  });
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
      return option(p.id, notes.length ? `${p.text} (${notes.join(", ")})` : p.text);
    })
  );
  $("frequency").replaceChildren(...Object.entries(FREQUENCIES).map(([key, f]) => option(key, f.text)));
  $("reason").replaceChildren(option("", "(no reason given)"), ...state.choices.reasons.map((r) => option(r.id, r.text)));
  fillProductRoutes();
  fillPatients();
  previewOrder();
  $("product").addEventListener("change", fillProductRoutes);
  $("frequency").addEventListener("change", () => {
    $("days").value = String(FREQUENCIES[$("frequency").value].days);
    previewOrder();
  });
  for (const id of ["dose", "dose-unit", "days"]) {
    $(id).addEventListener("input", previewOrder);
    $(id).addEventListener("change", previewOrder);
  }
  $("patient-filter").addEventListener("input", fillPatients);
  $("patient").addEventListener("change", (event) => choosePatient(event.target.value));
  $("order-form").addEventListener("submit", selectOrder);
  $("load-scenario").addEventListener("click", loadScenarioOrders);
  $("sign-orders").addEventListener("click", orderSign);
  document.body.dataset.ready = "true";
  status("Ready: pick a patient, then an order.");
}

document.addEventListener("DOMContentLoaded", start);
