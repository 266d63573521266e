"""Accounts REST API: upsert, list, read and delete accounts, contacts, support tickets and
usage; the GDPR export and erasure of a contact; the list of segments.

Thin views: records_upsert parses and validates what comes in, selectors read, services
delete and erase; the serializers below only describe what goes out (and, for the docs,
what may come in).
"""

from django.db import models
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import filters, segments, selectors, services
from accounts.models import Account, Contact, Segment, SupportTicket, UsageSnapshot
from nps_platform.api_errors import error_body

# --- Output ---------------------------------------------------------------------------------


class AccountOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    domain = serializers.CharField()
    plan = serializers.CharField()
    arr = serializers.DecimalField(
        max_digits=14, decimal_places=2, allow_null=True, help_text="In `currency`."
    )
    currency = serializers.SerializerMethodField(help_text="The organization's ISO 4217 code.")
    industry = serializers.CharField()
    size = serializers.CharField()
    lifecycle_stage = serializers.CharField(
        help_text="trial, onboarding, active, expansion, renewal, churned, or empty."
    )
    renewal_date = serializers.DateField(allow_null=True)
    signed_up_on = serializers.DateField(allow_null=True)
    tenure_days = serializers.IntegerField(allow_null=True, help_text="Days since signed_up_on.")
    owner_email = serializers.EmailField(source="owner.email", allow_null=True)
    health_score = serializers.IntegerField(allow_null=True)
    churned_at = serializers.DateTimeField(allow_null=True)
    last_score = serializers.IntegerField(allow_null=True, help_text="The latest NPS answer.")
    last_score_at = serializers.DateTimeField(allow_null=True)
    properties = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_currency(self, account) -> str:
        return self.context["organization"].currency


class ContactOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    email = serializers.EmailField(allow_null=True)
    name = serializers.CharField()
    phone = serializers.CharField()
    title = serializers.CharField()
    locale = serializers.CharField()
    timezone = serializers.CharField()
    account_id = serializers.IntegerField(allow_null=True)
    account_external_id = serializers.CharField(source="account.external_id", allow_null=True)
    suppressed_reason = serializers.CharField(
        help_text="unsubscribed, bounced, complained, or empty (may be surveyed)."
    )
    suppressed_at = serializers.DateTimeField(allow_null=True)
    suppression_note = serializers.CharField()
    last_surveyed_at = serializers.DateTimeField(allow_null=True)
    last_responded_at = serializers.DateTimeField(allow_null=True)
    properties = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SupportTicketOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    account_id = serializers.IntegerField()
    account_external_id = serializers.CharField(source="account.external_id")
    contact_id = serializers.IntegerField(allow_null=True)
    contact_email = serializers.EmailField(source="contact.email", allow_null=True)
    subject = serializers.CharField()
    status = serializers.CharField(help_text="open, pending, solved or closed.")
    priority = serializers.CharField(help_text="low, normal, high or urgent.")
    opened_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField()
    url = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class UsageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account_id = serializers.IntegerField()
    account_external_id = serializers.CharField(source="account.external_id")
    date = serializers.DateField()
    active_users = serializers.IntegerField()
    metrics = serializers.DictField()


class SegmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    rules = serializers.DictField(help_text='{"match": "all"|"any", "conditions": [...]}')
    summary = serializers.SerializerMethodField(help_text="The rules in words.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_summary(self, segment) -> str:
        return segments.describe(segment.rules)


class ContactExportOutputSerializer(serializers.Serializer):
    contact = serializers.DictField(help_text="The contact's fields and its account.")
    support_tickets = serializers.ListField(child=serializers.DictField())
    # Other apps add sections of their own (e.g. NPS responses), keyed by section name.


class AccountsApiErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A code: invalid, not_found, not_authenticated, …")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field name.",
    )


class RecordsUpsertItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in the list sent.")
    status = serializers.CharField(help_text="created, updated or error.")
    id = serializers.IntegerField(required=False, help_text="Unless status is error.")
    key = serializers.CharField(required=False, help_text="The item's natural key.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="When status is error: messages by field name.",
    )


class RecordsUpsertReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    errors = serializers.IntegerField()
    results = RecordsUpsertItemSerializer(many=True, help_text="One per item, in order.")


def _upsert_result_serializer(name: str, output: type[serializers.Serializer]):
    """The answer to one object: what happened, and the row as it is now."""
    return type(
        f"{name}UpsertResultSerializer",
        (serializers.Serializer,),
        {
            "__module__": __name__,
            "status": serializers.CharField(help_text="created or updated."),
            "id": serializers.IntegerField(),
            "key": serializers.CharField(help_text="The natural key."),
            "data": output(),
        },
    )


AccountUpsertResultSerializer = _upsert_result_serializer("Account", AccountOutputSerializer)
ContactUpsertResultSerializer = _upsert_result_serializer("Contact", ContactOutputSerializer)
SupportTicketUpsertResultSerializer = _upsert_result_serializer(
    "SupportTicket", SupportTicketOutputSerializer
)
UsageUpsertResultSerializer = _upsert_result_serializer("Usage", UsageOutputSerializer)


# --- Input (documentation: records_upsert parses and validates) ------------------------------


@extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True})
class _NumberField(serializers.Field):
    """A number, or text such as "120,000" or "$1,200.50"."""


class AccountInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200, help_text="Your id: the upsert key.")
    name = serializers.CharField(max_length=300, required=False, help_text="Required to create.")
    domain = serializers.CharField(required=False, allow_null=True, help_text="e.g. acme.com")
    plan = serializers.CharField(max_length=100, required=False, allow_null=True)
    arr = _NumberField(required=False, help_text="Annual recurring revenue, ≥ 0.")
    industry = serializers.CharField(max_length=100, required=False, allow_null=True)
    size = serializers.CharField(max_length=50, required=False, allow_null=True)
    lifecycle_stage = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="trial, onboarding, active, expansion, renewal or churned.",
    )
    renewal_date = serializers.DateField(required=False, allow_null=True)
    signed_up_on = serializers.DateField(
        required=False, allow_null=True, help_text="Not in the future."
    )
    owner_email = serializers.EmailField(
        required=False, allow_null=True, help_text="A member of your organization."
    )
    health_score = serializers.IntegerField(
        min_value=0, max_value=100, required=False, allow_null=True
    )
    churned_at = serializers.DateTimeField(required=False, allow_null=True)
    properties = serializers.DictField(
        required=False, help_text="Merged into the stored properties."
    )


class ContactInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(
        max_length=200, required=False, help_text="Upsert key (or email)."
    )
    email = serializers.EmailField(required=False, help_text="Upsert key (or external_id).")
    name = serializers.CharField(max_length=200, required=False, allow_null=True)
    phone = serializers.CharField(max_length=50, required=False, allow_null=True)
    title = serializers.CharField(max_length=200, required=False, allow_null=True)
    locale = serializers.CharField(required=False, allow_null=True, help_text="e.g. en, de-DE")
    timezone = serializers.CharField(
        required=False, allow_null=True, help_text="e.g. Europe/Berlin"
    )
    account_external_id = serializers.CharField(
        max_length=200, required=False, allow_null=True, help_text="An existing account."
    )
    suppressed_reason = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="unsubscribed, bounced or complained; empty to allow surveys again.",
    )
    suppression_note = serializers.CharField(max_length=500, required=False, allow_null=True)
    properties = serializers.DictField(
        required=False, help_text="Merged into the stored properties."
    )


class SupportTicketInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200, help_text="Your id: the upsert key.")
    account_external_id = serializers.CharField(
        max_length=200, required=False, help_text="An existing account; required to create."
    )
    contact_email = serializers.EmailField(required=False, allow_null=True)
    contact_external_id = serializers.CharField(max_length=200, required=False, allow_null=True)
    subject = serializers.CharField(max_length=500, required=False, help_text="Required to create.")
    status = serializers.CharField(
        required=False, allow_null=True, help_text="open, pending, solved or closed."
    )
    priority = serializers.CharField(
        required=False, allow_null=True, help_text="low, normal, high or urgent."
    )
    opened_at = serializers.DateTimeField(required=False, help_text="Required to create.")
    closed_at = serializers.DateTimeField(required=False, allow_null=True)
    source = serializers.CharField(
        max_length=100, required=False, allow_null=True, help_text="e.g. zendesk"
    )
    url = serializers.URLField(required=False, allow_null=True)


class UsageInputSerializer(serializers.Serializer):
    account_external_id = serializers.CharField(max_length=200, help_text="Part of the key.")
    date = serializers.DateField(help_text="Part of the key; not in the future.")
    active_users = serializers.IntegerField(min_value=0, required=False)
    metrics = serializers.DictField(required=False, help_text="Merged into the stored metrics.")


# --- Views ----------------------------------------------------------------------------------

UPSERT_DESCRIPTION = (
    "Send one object, or a list of up to 1,000. Rows are matched by their natural key "
    "({key}): new ones are created, existing ones updated, so sending the same payload "
    'twice leaves the same state. An empty value (null or "") clears a field; '
    "`properties.<name>` keys set one property.\n\n"
    "One object: 201 when created, 200 when updated, 400 when invalid. A list: 200 with a "
    "result per item; valid items are saved even when others have errors."
)

ERROR_RESPONSES = {
    400: OpenApiResponse(AccountsApiErrorSerializer, description="Not valid."),
    401: OpenApiResponse(AccountsApiErrorSerializer, description="No or a bad API key."),
}
NOT_FOUND = {404: OpenApiResponse(AccountsApiErrorSerializer, description="No such row here.")}


def _first_problem(errors: dict) -> str:
    for name, messages in errors.items():
        for message in messages:
            if name == "non_field_errors" or message.startswith(name):
                return message
            return f"{name}: {message}"
    return "The request is not valid."


def _nul_path(item) -> str | None:
    """Where a NUL character hides in an item ("name", "properties.note"), if anywhere.

    PostgreSQL cannot store one in text or JSON, so such items are refused up front.
    """
    stack = [("", item)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            return path or "value"
        if isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return child_path
                stack.append((child_path, child))
        elif isinstance(value, list):
            stack.extend((f"{path}[{n}]", child) for n, child in enumerate(value))
    return None


NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored; remove it."


def _list_api_schema(*, tag, noun, key, output, input_serializer, upsert_result):
    name = output.__name__.removesuffix("OutputSerializer")
    return extend_schema_view(
        get=extend_schema(
            summary=f"List {noun}",
            description="Newest first; cursor-paginated (follow `next`).",
            responses={200: output(many=True), **ERROR_RESPONSES},
            tags=[tag],
        ),
        post=extend_schema(
            summary=f"Create or update {noun}",
            description=UPSERT_DESCRIPTION.format(key=key),
            request=PolymorphicProxySerializer(
                component_name=f"{name}UpsertRequest",
                serializers=[input_serializer, input_serializer(many=True)],
                resource_type_field_name=None,
                many=False,
            ),
            responses={
                201: OpenApiResponse(upsert_result, description="One object, created."),
                200: OpenApiResponse(
                    PolymorphicProxySerializer(
                        component_name=f"{name}UpsertResponse",
                        serializers=[upsert_result, RecordsUpsertReportSerializer],
                        resource_type_field_name=None,
                        many=False,
                    ),
                    description="One object updated, or the report for a list.",
                ),
                **ERROR_RESPONSES,
            },
            tags=[tag],
        ),
    )


def _detail_api_schema(*, tag, thing, output, delete_description):
    return extend_schema_view(
        get=extend_schema(
            summary=f"One {thing}",
            responses={200: output, **ERROR_RESPONSES, **NOT_FOUND},
            tags=[tag],
        ),
        delete=extend_schema(
            summary=f"Delete a {thing}",
            description=delete_description,
            responses={204: None, **ERROR_RESPONSES, **NOT_FOUND},
            tags=[tag],
        ),
    )


class _RecordsListApi(GenericAPIView):
    """GET: the organization's rows, filtered and paginated. POST: the upsert."""

    model: type[models.Model]
    kind: str  # for records_upsert
    output_serializer: type[serializers.Serializer]

    @staticmethod
    def select(organization) -> models.QuerySet:
        raise NotImplementedError

    @staticmethod
    def get_one(organization, pk: int) -> models.Model:
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, outside any tenant
            return self.model.objects.none()
        return self.select(self.request.auth.organization)

    def get_serializer_context(self):
        return {"organization": self.request.auth.organization}

    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = self.output_serializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(data.data)

    def post(self, request):
        organization = request.auth.organization
        body = request.data
        if isinstance(body, dict):
            return self._upsert_one(organization, body)
        if not isinstance(body, list):
            raise exceptions.ValidationError(
                "Send a JSON object (one record) or a JSON list of up to "
                f"{services.MAX_BATCH:,} objects."
            )
        if not body:
            raise exceptions.ValidationError("The list is empty; send at least one object.")
        if len(body) > services.MAX_BATCH:
            raise exceptions.ValidationError(
                f"Send at most {services.MAX_BATCH:,} items at once; this list has {len(body):,}."
            )
        for index, item in enumerate(body):
            if path := _nul_path(item):
                raise exceptions.ValidationError(
                    f"Item {index}: {path} {NUL_MESSAGE} Nothing was saved."
                )
        report = services.records_upsert(organization=organization, kind=self.kind, items=body)
        return Response(report.as_dict())

    def _upsert_one(self, organization, item: dict):
        if path := _nul_path(item):
            field_name = path.split(".")[0].split("[")[0]
            return Response(
                error_body("invalid", f"{path} {NUL_MESSAGE}", {field_name: [NUL_MESSAGE]}),
                status=status.HTTP_400_BAD_REQUEST,
            )
        report = services.records_upsert(organization=organization, kind=self.kind, items=[item])
        result = report.results[0]
        if result.status == "error":
            return Response(
                error_body("invalid", _first_problem(result.errors), result.errors),
                status=status.HTTP_400_BAD_REQUEST,
            )
        row = self.get_one(organization, result.id)
        return Response(
            {
                "status": result.status,
                "id": result.id,
                "key": result.key,
                "data": self.output_serializer(row, context=self.get_serializer_context()).data,
            },
            status=status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK,
        )


class _RecordDetailApi(APIView):
    """GET one row; DELETE it (404 for another organization's id)."""

    output_serializer: type[serializers.Serializer]

    @staticmethod
    def get_one(organization, pk: int) -> models.Model:
        raise NotImplementedError

    def get(self, request, pk: int):
        organization = request.auth.organization
        row = self.get_one(organization, pk)
        return Response(self.output_serializer(row, context={"organization": organization}).data)

    def delete(self, request, pk: int):
        organization = request.auth.organization
        services.record_delete(organization=organization, instance=self.get_one(organization, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# Accounts


@_list_api_schema(
    tag="accounts",
    noun="accounts",
    key="external_id",
    output=AccountOutputSerializer,
    input_serializer=AccountInputSerializer,
    upsert_result=AccountUpsertResultSerializer,
)
class AccountListApi(_RecordsListApi):
    model = Account
    kind = "accounts"
    output_serializer = AccountOutputSerializer
    filterset_class = filters.AccountFilter
    select = staticmethod(selectors.accounts_of)
    get_one = staticmethod(selectors.get_account_for)


@_detail_api_schema(
    tag="accounts",
    thing="account",
    output=AccountOutputSerializer,
    delete_description="Deletes the account with its support tickets and usage; its "
    "contacts stay, without an account.",
)
class AccountDetailApi(_RecordDetailApi):
    output_serializer = AccountOutputSerializer
    get_one = staticmethod(selectors.get_account_for)


# Contacts


@_list_api_schema(
    tag="contacts",
    noun="contacts",
    key="external_id, else email",
    output=ContactOutputSerializer,
    input_serializer=ContactInputSerializer,
    upsert_result=ContactUpsertResultSerializer,
)
class ContactListApi(_RecordsListApi):
    model = Contact
    kind = "contacts"
    output_serializer = ContactOutputSerializer
    filterset_class = filters.ContactFilter
    select = staticmethod(selectors.contacts_of)
    get_one = staticmethod(selectors.get_contact_for)


@_detail_api_schema(
    tag="contacts",
    thing="contact",
    output=ContactOutputSerializer,
    delete_description="GDPR erasure: every part of the product drops or anonymises what it "
    "holds about the person, their support tickets stay without a contact, and the contact "
    "row goes. A record of the erasure (with a SHA-256 of the email, not the email) remains.",
)
class ContactDetailApi(_RecordDetailApi):
    output_serializer = ContactOutputSerializer
    get_one = staticmethod(selectors.get_contact_for)

    def delete(self, request, pk: int):
        api_key = request.auth
        contact = selectors.get_contact_for(api_key.organization, pk)
        services.contact_erase(
            organization=api_key.organization,
            contact=contact,
            erased_by=f"API key {api_key.prefix}…",
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactExportApi(APIView):
    @extend_schema(
        summary="Everything held about a contact (GDPR export)",
        description="The contact, its support tickets, and a section from each part of the "
        "product that keeps data about the person (e.g. survey responses).",
        responses={200: ContactExportOutputSerializer, **ERROR_RESPONSES, **NOT_FOUND},
        tags=["contacts"],
    )
    def get(self, request, pk: int):
        organization = request.auth.organization
        contact = selectors.get_contact_for(organization, pk)
        return Response(services.contact_export(organization=organization, contact=contact))


# Support tickets


@_list_api_schema(
    tag="support tickets",
    noun="support tickets",
    key="external_id",
    output=SupportTicketOutputSerializer,
    input_serializer=SupportTicketInputSerializer,
    upsert_result=SupportTicketUpsertResultSerializer,
)
class TicketListApi(_RecordsListApi):
    model = SupportTicket
    kind = "tickets"
    output_serializer = SupportTicketOutputSerializer
    filterset_class = filters.TicketFilter
    select = staticmethod(selectors.tickets_of)
    get_one = staticmethod(selectors.get_ticket_for)


@_detail_api_schema(
    tag="support tickets",
    thing="support ticket",
    output=SupportTicketOutputSerializer,
    delete_description="Deletes the ticket.",
)
class TicketDetailApi(_RecordDetailApi):
    output_serializer = SupportTicketOutputSerializer
    get_one = staticmethod(selectors.get_ticket_for)


# Usage


@_list_api_schema(
    tag="usage",
    noun="usage snapshots",
    key="account_external_id and date",
    output=UsageOutputSerializer,
    input_serializer=UsageInputSerializer,
    upsert_result=UsageUpsertResultSerializer,
)
class UsageListApi(_RecordsListApi):
    model = UsageSnapshot
    kind = "usage"
    output_serializer = UsageOutputSerializer
    filterset_class = filters.UsageFilter
    select = staticmethod(selectors.usage_of)
    get_one = staticmethod(selectors.get_usage_for)


@_detail_api_schema(
    tag="usage",
    thing="usage snapshot",
    output=UsageOutputSerializer,
    delete_description="Deletes the snapshot.",
)
class UsageDetailApi(_RecordDetailApi):
    output_serializer = UsageOutputSerializer
    get_one = staticmethod(selectors.get_usage_for)


# Segments


class SegmentListApi(GenericAPIView):
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Segment.objects.none()
        return selectors.segments_of(self.request.auth.organization)

    @extend_schema(
        summary="List segments",
        description="Segment ids filter the account and contact lists (`?segment=`).",
        responses={200: SegmentOutputSerializer(many=True), **ERROR_RESPONSES},
        tags=["segments"],
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SegmentOutputSerializer(page, many=True).data)
