"""The IVIG CDS services: one per hook, with the prefetch templates the rules need.

Discovery and dispatch both read these definitions. Order hooks look at the orders in focus
first and answer ``{"cards": []}`` without touching patient data when no immune globulin is
ordered; otherwise they resolve the patient's data once and run every rule for each IVIG order.
"""

from __future__ import annotations

from cds_service.cards import Card
from cds_service.fhir.parse import SkippedResource, parse_resource
from cds_service.service import HookCall, PrefetchSpec, ServiceDefinition
from hooks.card_builder import to_card
from hooks.knowledge_base import KnowledgeBase
from hooks.orders import IgOrder, OrderRecogniser, UnidentifiedOrder, orders_in_focus
from hooks.patient_data import ig_history, patient_record
from hooks.rules import ORDER_RULES, VIEW_RULES, RuleInput
from hooks.rules.base import Finding, ViewInput
from hooks.rules.data_incomplete import TOPIC as DATA_INCOMPLETE
from hooks.rules.plasma_exchange import check_plasma_exchange_order, is_plasma_exchange
from hooks.settings import Thresholds

PATIENT = "{{context.patientId}}"


def order_prefetch(kb: KnowledgeBase) -> tuple[PrefetchSpec, ...]:
    """Narrow templates: the Observation query lists exactly the codes the rules read."""
    codes = ",".join(sorted(f"{c.system}|{c.code}" for c in kb.observation_codes()))
    plex = kb.valueset("plasma-exchange")
    plex_codes = ",".join(sorted(f"{system}|{code}" for system, code in plex.codes))
    return (
        PrefetchSpec("patient", f"Patient/{PATIENT}", "every check (age, sex)", essential=True),
        PrefetchSpec(
            "conditions",
            f"Condition?patient={PATIENT}",
            "IgA deficiency, thrombosis and renal risk factors",
            essential=True,
        ),
        PrefetchSpec(
            "observations",
            f"Observation?patient={PATIENT}&code={codes}",
            "weight, renal labs, IgA, triglycerides, BMI and smoking status",
        ),
        PrefetchSpec(
            "allergies",
            f"AllergyIntolerance?patient={PATIENT}",
            "hypersensitivity to immune globulin, IgA or blood products",
        ),
        PrefetchSpec(
            "medicationRequests",
            # Every status: completed immune globulin orders are the IVIG history that plasma
            # exchange sequencing and SCIG conversion need; current ones are filtered in the record.
            f"MedicationRequest?patient={PATIENT}",
            "estrogens, prothrombotic and nephrotoxic drugs, and earlier immune globulin",
        ),
        PrefetchSpec(
            "medicationStatements",
            f"MedicationStatement?patient={PATIENT}&status=active",
            "estrogens, prothrombotic and nephrotoxic drugs",
        ),
        PrefetchSpec(
            "procedures",
            f"Procedure?patient={PATIENT}&code={plex_codes}",
            "plasma exchange already given (guidance order)",
        ),
    )


class OrderChecker:
    """The handler of the order-select and order-sign services."""

    def __init__(self, kb: KnowledgeBase, thresholds: Thresholds) -> None:
        self.kb = kb
        self.thresholds = thresholds
        self.recogniser = OrderRecogniser(kb)

    def __call__(self, call: HookCall) -> list[Card]:
        draft_entries = [e["resource"] for e in call.context["draftOrders"].get("entry", [])]
        draft_medications = {
            f"Medication/{r.get('id')}": r
            for r in draft_entries
            if r.get("resourceType") == "Medication"
        }
        focus = orders_in_focus(call.service.hook, call.context)
        found = [
            self.recogniser.recognise(order, draft_medications, call.data.read) for order in focus
        ]
        ig_orders = [order for order in found if isinstance(order, IgOrder)]
        plasma_exchanges = [order for order in focus if is_plasma_exchange(order, self.kb)]
        cards = [
            self._card(self._unidentified(order), None, call)
            for order in found
            if isinstance(order, UnidentifiedOrder)
        ]
        if not ig_orders and not plasma_exchanges:
            return cards
        data = call.data.resolve()
        record = patient_record(data, call, self.kb)
        history = ig_history(data, record, self.recogniser)
        for order in ig_orders:
            invalid = parse_resource(order.resource)
            if isinstance(invalid, SkippedResource):
                cards.append(self._card(self._unreadable(order, invalid), order, call))
                continue
            inp = RuleInput(record, order, self.kb, self.thresholds, tuple(draft_entries), history)
            cards += [self._card(f, order, call) for rule in ORDER_RULES if (f := rule(inp))]
        for plasma_exchange in plasma_exchanges:
            finding = check_plasma_exchange_order(plasma_exchange, record, history, self.thresholds)
            if finding:
                cards.append(self._card(finding, None, call))
        return cards

    def _card(self, finding: Finding, order: IgOrder | None, call: HookCall) -> Card:
        return to_card(finding, order, self.kb, call.new_uuid)

    @staticmethod
    def _unidentified(order: UnidentifiedOrder) -> Finding:
        return Finding(
            topic=DATA_INCOMPLETE,
            indicator="warning",
            summary=(
                "Medication of an order could not be identified: "
                "immune globulin checks may not have run"
            ),
            evidence=(f"{order.reference}: {order.why}",),
            recommendation=(
                "If this order is an immune globulin, review contraindications, thrombosis and "
                "renal risk by hand: the product is unknown to the service."
            ),
        )

    @staticmethod
    def _unreadable(order: IgOrder, skipped: SkippedResource) -> Finding:
        return Finding(
            topic=DATA_INCOMPLETE,
            indicator="warning",
            summary=(
                f"The {order.product_name} order is not valid FHIR R4: "
                "its safety checks did not run"
            ),
            evidence=(f"{skipped.reference}: {skipped.reason}",),
            recommendation="Correct the order; the immune globulin checks run on a readable order.",
        )


class PatientViewChecker:
    """The handler of the patient-view service: quiet unless something is actionable."""

    def __init__(self, kb: KnowledgeBase, thresholds: Thresholds) -> None:
        self.kb = kb
        self.thresholds = thresholds
        self.recogniser = OrderRecogniser(kb)

    def __call__(self, call: HookCall) -> list[Card]:
        data = call.data.resolve()
        record = patient_record(data, call, self.kb)
        inp = ViewInput(record, self.kb, self.thresholds, ig_history(data, record, self.recogniser))
        return [
            to_card(finding, None, self.kb, call.new_uuid)
            for rule in VIEW_RULES
            if (finding := rule(inp))
        ]


def patient_view_prefetch(kb: KnowledgeBase) -> tuple[PrefetchSpec, ...]:
    """Only what the patient-view rules read: IgG, renal labs and HBV serology by code."""
    concepts = ("serum-igg", "serum-creatinine", "egfr", "hbsag", "anti-hbc")
    codes = ",".join(
        sorted(
            f"{system}|{code}"
            for c in concepts
            for system, code in kb.observations[c].concept_set.codes
        )
    )
    return (
        PrefetchSpec("patient", f"Patient/{PATIENT}", "every check (age)", essential=True),
        PrefetchSpec(
            "conditions",
            f"Condition?patient={PATIENT}",
            "hypogammaglobulinemia, infections, hepatitis B and renal risk factors",
            essential=True,
        ),
        PrefetchSpec(
            "observations",
            f"Observation?patient={PATIENT}&code={codes}",
            "IgG troughs, renal labs and hepatitis B serology",
        ),
        PrefetchSpec(
            "medicationRequests",
            f"MedicationRequest?patient={PATIENT}",
            "immune globulin (and when SCIG started), anti-CD20 drugs and antivirals",
        ),
        PrefetchSpec(
            "medicationStatements",
            f"MedicationStatement?patient={PATIENT}&status=active",
            "immune globulin, anti-CD20 drugs and antivirals",
        ),
    )


def build_services(kb: KnowledgeBase, thresholds: Thresholds) -> list[ServiceDefinition]:
    checker = OrderChecker(kb, thresholds)
    prefetch = order_prefetch(kb)
    usage = (
        "Needs read access to Patient, Condition, Observation, AllergyIntolerance, "
        "MedicationRequest and MedicationStatement, by prefetch or through fhirServer."
    )
    checks = (
        "hypersensitivity to immune globulin, IgA deficiency, the thrombosis boxed warning, the "
        "renal boxed warning (IV), and missing weight or renal labs"
    )
    return [
        ServiceDefinition(
            id="ivig-order-select",
            hook="order-select",
            title="Immune globulin (IVIG/SCIG) order safety check",
            description=f"When an immune globulin order is selected, checks {checks}.",
            prefetch=prefetch,
            handler=checker,
            usage_requirements=usage,
        ),
        ServiceDefinition(
            id="ivig-order-sign",
            hook="order-sign",
            title="Immune globulin (IVIG/SCIG) order safety check at signing",
            description=f"When immune globulin orders are signed, checks {checks}.",
            prefetch=prefetch,
            handler=checker,
            usage_requirements=usage,
        ),
        ServiceDefinition(
            id="ivig-patient-view",
            hook="patient-view",
            title="Immune globulin monitoring when a chart is opened",
            description=(
                "On chart open: IgG trough and renal monitoring on immune globulin, hepatitis B "
                "screening and reactivation on anti-CD20 therapy, and candidates for "
                "immunoglobulin replacement. Quiet otherwise."
            ),
            prefetch=patient_view_prefetch(kb),
            handler=PatientViewChecker(kb, thresholds),
            usage_requirements=(
                "Needs read access to Patient, Condition, Observation, MedicationRequest and "
                "MedicationStatement, by prefetch or through fhirServer."
            ),
        ),
    ]
