"""Responses REST API: record one response or up to 1,000, list them with filters, read one,
and edit its comment or tags.

Thin views: services.responses_record validates and saves (every channel calls it),
idempotency.idempotent makes a retried POST safe, selectors read; the serializers below
only describe what goes out (and, for the docs, what may come in).
"""

from collections.abc import Callable
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from nps_platform.api_errors import error_body, exception_handler
from nps_platform.api_pagination import CursorPagination
from responses import filters, idempotency, selectors, services
from responses.models import Channel
from responses.models import Response as NpsResponse

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

# --- Output ---------------------------------------------------------------------------------


class ResponseContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(allow_null=True)
    name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True)


class ResponseAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    arr = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        allow_null=True,
        help_text="In the organization's currency.",
    )
    plan = serializers.CharField()


class ResponseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    score = serializers.IntegerField(help_text="0–10.")
    category = serializers.CharField(help_text="detractor (0–6), passive (7–8) or promoter (9–10).")
    danger_zone = serializers.BooleanField(help_text="A score of 0–3.")
    comment = serializers.CharField()
    has_comment = serializers.BooleanField()
    sentiment = serializers.FloatField(
        allow_null=True,
        help_text="−1 (negative) to 1 (positive); null without a comment or until analysed.",
    )
    themes = serializers.ListField(
        child=serializers.CharField(),
        help_text="Theme slugs found in the comment; filled in shortly after it is saved.",
    )
    tags = serializers.ListField(child=serializers.CharField())
    channel = serializers.CharField(help_text="email, link, in_app, api or import.")
    submitted_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    external_id = serializers.CharField(allow_null=True)
    properties = serializers.DictField()
    contact = ResponseContactSerializer(allow_null=True)
    account = ResponseAccountSerializer(allow_null=True, help_text="The contact's account.")
    survey_id = serializers.IntegerField(allow_null=True)
    invitation_id = serializers.IntegerField(allow_null=True)


def represent(response: NpsResponse) -> dict:
    """A response as the API shows it: exactly what ResponseOutputSerializer gives (the
    schema and the list use it; a test holds the two together), written out by hand
    because the serializer's field machinery costs more than the rest of a recorded answer's
    answer. Reads the contact and the account as cached on the response (or one query)."""
    contact = response.contact
    account = response.account
    return {
        "id": response.id,
        "score": response.score,
        "category": str(response.category),
        "danger_zone": bool(response.danger_zone),
        "comment": str(response.comment),
        "has_comment": bool(response.has_comment),
        "sentiment": None if response.sentiment is None else float(response.sentiment),
        "themes": [_text(theme) for theme in response.themes],
        "tags": [_text(tag) for tag in response.tags],
        "channel": str(response.channel),
        "submitted_at": _moment(response.submitted_at),
        "updated_at": _moment(response.updated_at),
        "external_id": None if response.external_id is None else str(response.external_id),
        "properties": {str(key): value for key, value in response.properties.items()},
        "contact": None
        if contact is None
        else {
            "id": contact.id,
            "email": None if contact.email is None else str(contact.email),
            "name": str(contact.name),
            "external_id": None if contact.external_id is None else str(contact.external_id),
        },
        "account": None
        if account is None
        else {
            "id": account.id,
            "external_id": str(account.external_id),
            "name": str(account.name),
            "arr": None if account.arr is None else _ARR.to_representation(account.arr),
            "plan": str(account.plan),
        },
        "survey_id": response.survey_id,
        "invitation_id": response.invitation_id,
    }


_ARR = ResponseAccountSerializer().fields["arr"]


def _text(value) -> str | None:
    return None if value is None else str(value)


def _moment(value) -> str | None:
    """DRF's DateTimeField: ISO 8601 in the current time zone, UTC written as Z."""
    if not value:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class ResponsesApiErrorSerializer(serializers.Serializer):
    error = serializers.CharField(
        help_text="A code: invalid, not_found, not_authenticated, idempotency_key_in_flight, "
        "idempotency_key_reused, …"
    )
    message = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field name.",
    )


class ResponseBulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in the list sent.")
    status = serializers.CharField(help_text="created, updated or error.")
    id = serializers.IntegerField(required=False, help_text="The response's id, unless an error.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="When status is error: messages by field name.",
    )


class ResponseBulkReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    errors = serializers.IntegerField()
    results = ResponseBulkItemResultSerializer(many=True, help_text="One per item, in order.")


# --- Input (documentation: services.responses_record parses and validates) --------------------


class ResponseInputSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=0, max_value=10, help_text="0–10, required.")
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=services.MAX_COMMENT
    )
    email = serializers.EmailField(
        required=False,
        help_text="Who answered: email, contact_external_id or contact_id (one is required).",
    )
    contact_external_id = serializers.CharField(max_length=200, required=False)
    contact_id = serializers.IntegerField(required=False, help_text="A contact's id.")
    contact_name = serializers.CharField(
        max_length=200, required=False, help_text="For a contact create_missing creates."
    )
    account_external_id = serializers.CharField(
        max_length=200, required=False, help_text="For a contact create_missing creates."
    )
    account_name = serializers.CharField(
        max_length=300, required=False, help_text="For an account create_missing creates."
    )
    submitted_at = serializers.DateTimeField(
        required=False, help_text="When the person answered; now if left out. Not in the future."
    )
    external_id = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Your id for the response: sending it again updates the same response.",
    )
    properties = serializers.DictField(
        required=False, help_text="Merged into the stored properties."
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=20
    )
    survey_id = serializers.IntegerField(
        required=False,
        help_text="The survey asked, if any: one of the organization's surveys. Taken from "
        "the invitation when only invitation_id is sent.",
    )
    invitation_id = serializers.IntegerField(
        required=False,
        help_text="The invitation answered: one of the organization's, sent to the person "
        "this response names. One response per invitation.",
    )


CREATE_MISSING_HELP = (
    "true: create the contact (and its account, from account_external_id) when no contact "
    "matches; otherwise such a response is an error. Also accepted as a query parameter."
)


class ResponseCreateRequestSerializer(ResponseInputSerializer):
    create_missing = serializers.BooleanField(required=False, help_text=CREATE_MISSING_HELP)


class ResponseBulkRequestSerializer(serializers.Serializer):
    items = ResponseInputSerializer(many=True, help_text="1 to 1,000 responses.")
    create_missing = serializers.BooleanField(required=False, help_text=CREATE_MISSING_HELP)


class ResponsePatchSerializer(serializers.Serializer):
    comment = serializers.CharField(
        required=False, allow_blank=True, help_text="Analysed again once saved."
    )
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)


# --- Schema pieces ---------------------------------------------------------------------------

ERRORS = {
    400: OpenApiResponse(ResponsesApiErrorSerializer, description="Not valid."),
    401: OpenApiResponse(ResponsesApiErrorSerializer, description="No or a bad API key."),
}
NOT_FOUND = {404: OpenApiResponse(ResponsesApiErrorSerializer, description="No such response.")}
IDEMPOTENCY_ERRORS = {
    409: OpenApiResponse(
        ResponsesApiErrorSerializer,
        description="A request with this Idempotency-Key is still in flight; retry shortly.",
    ),
    422: OpenApiResponse(
        ResponsesApiErrorSerializer,
        description="This Idempotency-Key was used for a different request.",
    ),
}
IDEMPOTENCY_PARAMETERS = [
    OpenApiParameter(
        IDEMPOTENCY_HEADER,
        str,
        location=OpenApiParameter.HEADER,
        description="A unique value per request (e.g. a UUID, at most 255 characters): a "
        "retry with the same key and body within 24 hours gets the first answer again "
        "instead of recording twice.",
    ),
    OpenApiParameter(
        REPLAYED_HEADER,
        str,
        location=OpenApiParameter.HEADER,
        response=[200, 201, 400],
        description="true when the answer is the stored answer to an earlier request with "
        "the same Idempotency-Key.",
    ),
    OpenApiParameter(
        "create_missing",
        bool,
        description=CREATE_MISSING_HELP.removesuffix(" Also accepted as a query parameter."),
    ),
]


# --- Helpers ---------------------------------------------------------------------------------

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def _flag(value) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise exceptions.ValidationError({"create_missing": ["Use true or false."]})


def _answered(request, view, handler: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
    """(status, body) of `handler`, with a client error turned into its JSON answer (so it
    is stored under an Idempotency-Key like any answer); anything else propagates."""
    try:
        return handler()
    except Exception as exc:
        answer = exception_handler(exc, {"request": request, "view": view})
        if answer is None or answer.status_code >= 500:
            raise
        return answer.status_code, answer.data


def _idempotent_post(request, view, handler: Callable[[], tuple[int, Any]]) -> Response:
    organization = request.auth.organization
    try:
        key = idempotency.clean_key(request.headers.get(IDEMPOTENCY_HEADER))
    except idempotency.IdempotencyError as exc:
        return Response(
            error_body(exc.code, str(exc), {IDEMPOTENCY_HEADER: [str(exc)]}),
            status=exc.status_code,
        )
    fingerprint = key and services.request_fingerprint(
        {
            "method": request.method,
            "path": request.path,
            "body": request.data,
            "create_missing": request.query_params.get("create_missing"),
        }
    )
    try:
        answer = idempotency.idempotent(
            organization=organization,
            key=key,
            request_hash=fingerprint,
            process=lambda: _answered(request, view, handler),
        )
    except idempotency.IdempotencyError as exc:
        return Response(error_body(exc.code, str(exc)), status=exc.status_code)
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
    return Response(answer.body, status=answer.status_code, headers=headers)


class ResponseCursorPagination(CursorPagination):
    ordering = ("-submitted_at", "-id")


# --- Views ----------------------------------------------------------------------------------


class ResponseListApi(GenericAPIView):
    """GET: the organization's responses, filtered, newest first. POST: record one."""

    filterset_class = filters.ResponseFilter
    pagination_class = ResponseCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, outside any tenant
            return NpsResponse.objects.none()
        return selectors.responses_of(self.request.auth.organization)

    @extend_schema(
        summary="List responses",
        description="Newest submitted first; cursor-paginated (follow `next`, `page_size` up "
        "to 1,000). Filters combine with AND; a value that cannot be read answers 400.",
        responses={200: ResponseOutputSerializer(many=True), **ERRORS},
        tags=["responses"],
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ResponseOutputSerializer(page, many=True).data)

    @extend_schema(
        summary="Record a response",
        description="One person's answer. The person is found by contact_id, "
        "contact_external_id or email; with `create_missing` an unknown one is created. A "
        "second POST with the same `external_id` updates that response (200) instead of "
        "adding one. The comment is analysed (sentiment, themes) shortly after.",
        request=ResponseCreateRequestSerializer,
        parameters=IDEMPOTENCY_PARAMETERS,
        responses={
            201: OpenApiResponse(ResponseOutputSerializer, description="Recorded."),
            200: OpenApiResponse(
                ResponseOutputSerializer, description="Updated (same external_id)."
            ),
            **ERRORS,
            **IDEMPOTENCY_ERRORS,
        },
        tags=["responses"],
    )
    def post(self, request):
        return _idempotent_post(request, self, lambda: self._record(request))

    @staticmethod
    def _record(request) -> tuple[int, dict]:
        organization = request.auth.organization
        body = request.data
        if isinstance(body, list):
            raise exceptions.ValidationError(
                "Send one response as a JSON object; POST a list of up to "
                f"{services.MAX_BATCH:,} to /api/v1/responses/bulk."
            )
        if not isinstance(body, dict):
            raise exceptions.ValidationError("Send one response as a JSON object.")
        if not body:
            raise exceptions.ValidationError(
                "The body is empty: send a JSON object with a score and the person's email "
                "or contact_external_id."
            )
        item = dict(body)
        create_missing = _flag(
            item.pop("create_missing", request.query_params.get("create_missing"))
        )
        # services.response_record's batch of one, called directly: the body's keys are
        # data, and must never meet its keyword arguments (a body with "channel" would).
        report = services.responses_record(
            organization=organization,
            items=[item],
            channel=Channel.API,
            create_missing=create_missing,
        )
        result = report.results[0]
        if result.status == "error":
            raise exceptions.ValidationError(result.errors)
        # The saved row as the service left it, with its contact; the account is read when
        # represented (one query, as a re-read with select_related would be).
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return code, represent(result.response)


class ResponseBulkApi(APIView):
    @extend_schema(
        summary="Record up to 1,000 responses",
        description='`{"items": [...], "create_missing": false}` or a bare list. Each '
        "item gets a result (created, updated or error with messages by field); valid items "
        "are saved even when others have errors.",
        request=PolymorphicProxySerializer(
            component_name="ResponseBulkRequestBody",
            serializers=[ResponseBulkRequestSerializer, ResponseInputSerializer(many=True)],
            resource_type_field_name=None,
            many=False,
        ),
        parameters=IDEMPOTENCY_PARAMETERS,
        responses={
            200: OpenApiResponse(ResponseBulkReportSerializer, description="A result per item."),
            **ERRORS,
            **IDEMPOTENCY_ERRORS,
        },
        tags=["responses"],
    )
    def post(self, request):
        return _idempotent_post(request, self, lambda: self._record(request))

    @staticmethod
    def _record(request) -> tuple[int, dict]:
        body = request.data
        create_missing = request.query_params.get("create_missing")
        if isinstance(body, dict):
            unknown = sorted(set(body) - {"items", "create_missing"})
            if unknown:
                raise exceptions.ValidationError(
                    {
                        name: ["Unknown field: send items and, if you like, create_missing."]
                        for name in unknown
                    }
                )
            if "items" not in body:
                raise exceptions.ValidationError(
                    {"items": ["Send the responses as items: a list of 1 to 1,000 objects."]}
                )
            items, create_missing = body["items"], body.get("create_missing", create_missing)
            where = "items"
        else:
            items, where = body, "non_field_errors"
        if not isinstance(items, list):
            raise exceptions.ValidationError(
                {where: ['Send a list of 1 to 1,000 responses, or {"items": [...]}.']}
            )
        if not items:
            raise exceptions.ValidationError(
                {where: ["The list is empty; send at least one response."]}
            )
        if len(items) > services.MAX_BATCH:
            raise exceptions.ValidationError(
                {
                    where: [
                        f"Send at most {services.MAX_BATCH:,} responses at once; this list "
                        f"has {len(items):,}."
                    ]
                }
            )
        report = services.responses_record(
            organization=request.auth.organization,
            items=items,
            channel=Channel.API,
            create_missing=_flag(create_missing),
        )
        return status.HTTP_200_OK, report.as_dict()


class ResponseDetailApi(APIView):
    @extend_schema(
        summary="One response",
        responses={200: ResponseOutputSerializer, **ERRORS, **NOT_FOUND},
        tags=["responses"],
    )
    def get(self, request, pk: int):
        response = selectors.get_response_for(request.auth.organization, pk)
        return Response(represent(response))

    @extend_schema(
        summary="Edit a response's comment or tags",
        description="Only `comment` and `tags` change; the score and the person do not (a "
        "new answer is a new response). An edited comment is analysed again shortly after.",
        request=ResponsePatchSerializer,
        responses={200: ResponseOutputSerializer, **ERRORS, **NOT_FOUND},
        tags=["responses"],
    )
    def patch(self, request, pk: int):
        organization = request.auth.organization
        response = selectors.get_response_for(organization, pk)
        changes = request.data
        if not isinstance(changes, dict):
            raise exceptions.ValidationError("Send a JSON object with comment and/or tags.")
        response = services.response_update(
            organization=organization, response=response, changes=dict(changes)
        )
        return Response(represent(response))
