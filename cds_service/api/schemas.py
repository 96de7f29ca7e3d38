"""Marshmallow schemas for what clients send: hook requests (per hook context) and feedback.

Unknown top-level fields are excluded rather than rejected: later CDS Hooks versions add fields, and
``extension`` is reserved for clients. Context fields the hooks do not define are kept but not
checked.
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    EXCLUDE,
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from cds_service.errors import InvalidHookRequest, Issue

FHIR_ID = validate.Regexp(r"^[A-Za-z0-9\-.]{1,64}$", error="must be a FHIR id")
REFERENCE = validate.Regexp(
    r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$", error="must be a reference of the form Type/id"
)


class FhirAuthorizationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer(required=True, strict=True)
    scope = fields.String(required=True)
    subject = fields.String(required=True)
    patient = fields.String()


class HookRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    hook = fields.String(required=True, validate=validate.Length(min=1))
    hookInstance = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=200),
            # an identifier (a UUID in CDS Hooks): a control character is an error, not data
            validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters"),
        ],
    )
    fhirServer = fields.Url(require_tld=False, schemes={"http", "https"})
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema)
    context = fields.Dict(required=True)
    prefetch = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))
    extension = fields.Dict()

    @validates_schema
    def _server_with_token(self, data: dict[str, Any], **_: Any) -> None:
        if "fhirAuthorization" in data and "fhirServer" not in data:
            raise ValidationError(
                "fhirServer is required when fhirAuthorization is given", "fhirServer"
            )

    @validates_schema
    def _prefetch_values_are_resources(self, data: dict[str, Any], **_: Any) -> None:
        wrong = {
            key: ["must be a FHIR resource (an object with a resourceType) or null"]
            for key, value in (data.get("prefetch") or {}).items()
            if value is not None
            and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str))
        }
        if wrong:
            raise ValidationError({"prefetch": wrong})


class PatientViewContextSchema(Schema):
    class Meta:
        unknown = INCLUDE

    userId = fields.String(required=True, validate=REFERENCE)
    patientId = fields.String(required=True, validate=FHIR_ID)
    encounterId = fields.String(validate=FHIR_ID)


def _draft_orders_bundle(value: Any) -> None:
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise ValidationError("must be a FHIR Bundle")
    entries = value.get("entry", [])
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("resource"), dict) for entry in entries
    ):
        raise ValidationError("every entry must hold a resource")


class OrderSignContextSchema(PatientViewContextSchema):
    draftOrders = fields.Dict(required=True, validate=_draft_orders_bundle)


class OrderSelectContextSchema(OrderSignContextSchema):
    selections = fields.List(
        fields.String(validate=REFERENCE), required=True, validate=validate.Length(min=1)
    )

    @validates_schema
    def _selections_in_draft_orders(self, data: dict[str, Any], **_: Any) -> None:
        drafts = {
            f"{entry['resource'].get('resourceType')}/{entry['resource'].get('id')}"
            for entry in data.get("draftOrders", {}).get("entry", [])
        }
        unknown = [ref for ref in data.get("selections", []) if ref not in drafts]
        if unknown:
            raise ValidationError(f"not found in draftOrders: {', '.join(unknown)}", "selections")


CONTEXT_SCHEMAS: dict[str, type[Schema]] = {
    "patient-view": PatientViewContextSchema,
    "order-select": OrderSelectContextSchema,
    "order-sign": OrderSignContextSchema,
}


class CodingSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    system = fields.String(required=True)
    code = fields.String(required=True)
    display = fields.String()


class OverrideReasonSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = fields.Nested(CodingSchema)
    userComment = fields.String()

    @validates_schema
    def _reason_or_comment(self, data: dict[str, Any], **_: Any) -> None:
        if "reason" not in data and "userComment" not in data:
            raise ValidationError("needs a reason or a userComment")


class AcceptedSuggestionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1))


class FeedbackItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    card = fields.String(required=True, validate=validate.Length(min=1, max=100))
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(fields.Nested(AcceptedSuggestionSchema))
    overrideReason = fields.Nested(OverrideReasonSchema)
    outcomeTimestamp = fields.AwareDateTime(required=True, format="iso")

    @validates_schema
    def _accepted_needs_suggestions(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("outcome") == "accepted" and not data.get("acceptedSuggestions"):
            raise ValidationError("is required when outcome is 'accepted'", "acceptedSuggestions")


class FeedbackSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    feedback = fields.List(
        fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1, max=100)
    )


def issues_from(messages: Any, prefix: str = "") -> list[Issue]:
    """Flatten marshmallow's nested error messages into issues with a dotted field path."""
    if isinstance(messages, dict):
        found: list[Issue] = []
        for key, value in messages.items():
            path = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            found.extend(issues_from(value, path))
        return found
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return [Issue(f"{prefix or 'body'}: {'; '.join(messages)}", prefix or None)]
    if isinstance(messages, list):
        return [issue for item in messages for issue in issues_from(item, prefix)]
    return [Issue(f"{prefix or 'body'}: {messages}", prefix or None)]


def load(schema: Schema, data: Any, prefix: str = "") -> dict[str, Any]:
    """Validate ``data`` or raise InvalidHookRequest naming every field that is wrong and why."""
    try:
        return schema.load(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise InvalidHookRequest(
            "the request body is not valid", issues_from(exc.messages, prefix)
        ) from None
