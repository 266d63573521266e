"""Delighted's REST API (https://api.delighted.com/v1/), served at /delighted/v1/ so an
integration moves by changing its base URL and key.

Authentication is the organization's API key as the HTTP Basic user name, with or without a
trailing ":" (TenantMiddleware reads it on /delighted/ and enters the tenant's scope). Bodies
are Delighted's: bare JSON arrays for lists, ids as strings, times as epoch seconds, errors
as {"status", "message", "errors"}. Every write goes through the product's own services
(compat.services), and the per-key rate limit is the one the native API counts against.

These views are not part of the OpenAPI schema of /api/v1/ (`schema = None`): Delighted's
own documentation describes them; docs/moving-from-delighted.md says what differs.
"""

import math
from datetime import date, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from compat import selectors, services
from compat.services import Unprocessable
from insights import metrics
from nps_platform.api_auth import ApiKeyAuthentication, ApiKeyRateThrottle, HasOrganizationApiKey
from nps_platform.params import whole_number
from responses import idempotency
from responses.services import request_fingerprint
from responses.webhooks import delighted_person, delighted_survey_response, epoch

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MESSAGES = {
    400: "Bad request",
    401: "Invalid API key",
    404: "Resource not found",
    405: "Method not allowed",
    406: "Not acceptable",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
}


def error_body(status: int, message: str | None = None, errors: dict | None = None) -> dict:
    body = {"status": status, "message": message or MESSAGES.get(status, "Error")}
    if errors is not None:
        body["errors"] = errors
    return body


def _messages(detail) -> dict:
    if isinstance(detail, dict):
        return {
            str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()
        }
    return {"base": [str(m) for m in (detail if isinstance(detail, list) else [detail])]}


def delighted_exception_handler(exc, context):
    """Every error in Delighted's shape; a 429 always carries an integer Retry-After."""
    headers = {}
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"base": exc.messages}
        return ApiResponse(error_body(422, errors=_messages(detail)), status=422)
    if isinstance(exc, exceptions.ValidationError):
        return ApiResponse(error_body(422, errors=_messages(exc.detail)), status=422)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return ApiResponse(error_body(404), status=404)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Basic realm="Delighted API"'
        return ApiResponse(error_body(401), status=401, headers=headers)
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        return ApiResponse(
            error_body(429, f"Too many requests; retry in {wait} seconds."),
            status=429,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, exceptions.APIException):
        status = exc.status_code if exc.status_code != 403 else 401
        return ApiResponse(error_body(status, str(exc.detail)), status=status)
    return None


class DelightedKeyAuthentication(ApiKeyAuthentication):
    """The key the middleware matched (Basic on /delighted/, or Bearer); 401 otherwise."""

    def authenticate_header(self, request):
        return 'Basic realm="Delighted API"'


class DelightedApi(APIView):
    schema = None  # not part of /api/v1/'s OpenAPI document
    authentication_classes = [DelightedKeyAuthentication]
    permission_classes = [HasOrganizationApiKey]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [JSONParser, FormParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return delighted_exception_handler

    @property
    def organization(self):
        return self.request.user.organization

    def params(self) -> dict:
        return bracketed(self.request.query_params)

    def body(self) -> dict:
        data = self.request.data
        if hasattr(data, "getlist"):
            return bracketed(data)
        if not isinstance(data, dict):
            raise Unprocessable({"base": ["Send a JSON object."]})
        return data

    def idempotent_post(self, handler):
        """Runs a POST once per Idempotency-Key (if the client sends one), through the
        responses API's own key store: a retry gets the first answer again."""
        request = self.request
        try:
            key = idempotency.clean_key(request.headers.get(IDEMPOTENCY_HEADER))
        except idempotency.IdempotencyError as exc:
            raise Unprocessable({IDEMPOTENCY_HEADER: [str(exc)]}) from None
        body = self.body()
        fingerprint = key and request_fingerprint(
            {"method": "POST", "path": request.path, "body": body}
        )

        def process():
            try:
                answer = handler(body)
            except Exception as exc:
                answer = delighted_exception_handler(exc, {"request": request, "view": self})
                if answer is None or answer.status_code >= 500:
                    raise
            return answer.status_code, answer.data

        try:
            answer = idempotency.idempotent(
                organization=self.organization,
                key=key,
                request_hash=fingerprint,
                process=process,
            )
        except idempotency.IdempotencyError as exc:
            return ApiResponse(error_body(exc.status_code, str(exc)), status=exc.status_code)
        headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
        return ApiResponse(answer.body, status=answer.status_code, headers=headers)


def bracketed(query) -> dict:
    """Rails-style parameters as Delighted's clients send them: `expand[]=person` is a list,
    `properties[Plan]=Pro` an object."""
    out: dict = {}
    for key in query:
        values = query.getlist(key)
        if key.endswith("[]"):
            out.setdefault(key[:-2], [])
            if isinstance(out[key[:-2]], list):
                out[key[:-2]].extend(values)
        elif "[" in key and key.endswith("]"):
            name, _, sub = key[:-1].partition("[")
            target = out.setdefault(name, {})
            if isinstance(target, dict):
                target[sub] = values[-1]
        else:
            out[key] = values[-1]
    return out


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v for v in str(value).split(",") if v]


def _per_page(params) -> int:
    value = params.get("per_page")
    if value in (None, ""):
        return DEFAULT_PER_PAGE
    number = whole_number(value)
    if number is None or not 1 <= number <= MAX_PER_PAGE:
        raise Unprocessable({"per_page": [f"per_page must be from 1 to {MAX_PER_PAGE}."]})
    return number


def _page(params) -> int:
    value = params.get("page")
    if value in (None, ""):
        return 1
    number = whole_number(value)
    if number is None or not 1 <= number <= 1_000_000:
        raise Unprocessable({"page": ["page must be a whole number from 1."]})
    return number


def _window(queryset, params, field: str, since="since", until="until"):
    if params.get(since) not in (None, ""):
        queryset = queryset.filter(**{f"{field}__gte": services.epoch_param(params[since], since)})
    if params.get(until) not in (None, ""):
        queryset = queryset.filter(**{f"{field}__lte": services.epoch_param(params[until], until)})
    return queryset


def _next_link(request, **changes) -> str:
    query = request.query_params.copy()
    for key, value in changes.items():
        query[key] = value
    url = f"{request.build_absolute_uri(request.path)}?{urlencode(query, doseq=True)}"
    return f'<{url}>; rel="next"'


def _id_param(params, name: str) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    number = whole_number(value)
    if number is None:
        raise Unprocessable({name: [f"{name} must be an id."]})
    return number


# --- People --------------------------------------------------------------------------------


def person_data(contact, next_survey_at=None) -> dict:
    data = delighted_person(contact)
    data["next_survey_scheduled_at"] = epoch(
        next_survey_at if next_survey_at is not None else getattr(contact, "next_survey_at", None)
    )
    return data


class PeopleApi(DelightedApi):
    def get(self, request):
        params = self.params()
        per_page = _per_page(params)
        people = selectors.people_of(self.organization)
        people = _window(people, params, "created_at")
        if params.get("email") and params.get("phone_number"):
            raise Unprocessable({"email": ["Send email or phone_number, not both."]})
        if params.get("email"):
            found = services.person_find(self.organization, f"email:{params['email']}")
            people = people.filter(pk=found.pk if found else 0)
        if params.get("phone_number"):
            people = people.filter(phone=str(params["phone_number"]).strip())
        cursor = params.get("page_info")
        if cursor not in (None, ""):
            if whole_number(cursor) is None:
                raise Unprocessable({"page_info": ["page_info is not a cursor from a Link."]})
            people = people.filter(pk__gt=whole_number(cursor))
        rows = list(people[: per_page + 1])
        headers = {}
        if len(rows) > per_page:
            rows = rows[:per_page]
            headers["Link"] = _next_link(request, page_info=str(rows[-1].pk))
        return ApiResponse([person_data(c) for c in rows], headers=headers)

    def post(self, request):
        return self.idempotent_post(self._upsert)

    def _upsert(self, data):
        unknown = set(data) - services.ALLOWED_PERSON_FIELDS
        if unknown:
            raise Unprocessable(
                {name: [f"Unknown parameter {name}."] for name in sorted(unknown)[:20]}
            )
        result = services.person_upsert(organization=self.organization, data=data)
        invitation = result.invitation
        body = person_data(result.contact, invitation.planned_for if invitation else None)
        body["survey_scheduled_at"] = epoch(invitation.planned_for) if invitation else None
        body["properties"] = data.get("properties") or {}
        # Delighted answers 200 whether the person was created or updated.
        return ApiResponse(body)


class PersonApi(DelightedApi):
    def delete(self, request, person):
        contact = services.person_find(self.organization, person)
        if contact is None:
            raise Http404
        services.person_erase(
            organization=self.organization,
            contact=contact,
            erased_by=f"{request.user} (Delighted-compatible API)",
        )
        return ApiResponse({"ok": True}, status=202)


class PendingSurveyRequestsApi(DelightedApi):
    def delete(self, request, person):
        contact = services.person_find(self.organization, f"email:{person}")
        if contact is None:
            contact = services.person_find(self.organization, person)
        if contact is None:
            raise Http404
        services.pending_surveys_cancel(organization=self.organization, contact=contact)
        return ApiResponse({"ok": True})


# --- Survey responses ----------------------------------------------------------------------

ORDERS = {
    "asc": ("submitted_at", "id"),
    "desc": ("-submitted_at", "-id"),
    "asc:created_at": ("submitted_at", "id"),
    "desc:created_at": ("-submitted_at", "-id"),
    "asc:updated_at": ("updated_at", "id"),
    "desc:updated_at": ("-updated_at", "-id"),
}
EXPANDABLE = {"person", "notes"}


def _expand(params) -> set[str]:
    expand = set(_as_list(params.get("expand")))
    unknown = expand - EXPANDABLE
    if unknown:
        raise Unprocessable({"expand": [f"expand takes person and notes, not {sorted(unknown)}."]})
    return expand


def response_data(response, expand: set[str]) -> dict:
    notes = list(response.notes.all()) if "notes" in expand else None
    return delighted_survey_response(response, person="person" in expand, notes=notes)


class SurveyResponsesApi(DelightedApi):
    def get(self, request):
        params = self.params()
        per_page, page = _per_page(params), _page(params)
        expand = _expand(params)
        order = str(params.get("order") or "asc")
        if order not in ORDERS:
            raise Unprocessable({"order": [f"order must be one of {', '.join(ORDERS)}."]})
        responses = selectors.survey_responses_of(self.organization, notes="notes" in expand)
        responses = _window(responses, params, "submitted_at")
        responses = _window(
            responses, params, "updated_at", since="updated_since", until="updated_until"
        )
        person_id = _id_param(params, "person_id")
        if person_id is not None:
            responses = responses.filter(contact_id=person_id)
        if params.get("person_email"):
            found = services.person_find(self.organization, f"email:{params['person_email']}")
            responses = responses.filter(contact_id=found.pk if found else 0)
        trend = _id_param(params, "trend")
        if trend is not None:
            try:
                responses = selectors.in_trend(self.organization, responses, trend)
            except Http404:
                raise Unprocessable({"trend": ["No trend (segment) has this id."]}) from None
        start = (page - 1) * per_page
        rows = list(responses.order_by(*ORDERS[order])[start : start + per_page + 1])
        headers = {}
        if len(rows) > per_page:
            rows = rows[:per_page]
            headers["Link"] = _next_link(request, page=str(page + 1))
        return ApiResponse([response_data(r, expand) for r in rows], headers=headers)

    def post(self, request):
        return self.idempotent_post(self._create)

    def _create(self, data):
        response = services.survey_response_create(organization=self.organization, data=data)
        response = selectors.get_survey_response_for(self.organization, response.pk)
        return ApiResponse(response_data(response, set()), status=201)


class SurveyResponseApi(DelightedApi):
    def get(self, request, response_id):
        expand = _expand(self.params())
        response = selectors.get_survey_response_for(
            self.organization, response_id, notes="notes" in expand
        )
        return ApiResponse(response_data(response, expand))

    def put(self, request, response_id):
        response = selectors.get_survey_response_for(self.organization, response_id)
        data = self.body()
        expand = _expand(self.params())
        if isinstance(data.get("person"), dict):
            expand.add("person")  # the client sent it expanded: answer in kind
        services.survey_response_change(
            organization=self.organization, response=response, data=data
        )
        response = selectors.get_survey_response_for(
            self.organization, response_id, notes="notes" in expand
        )
        return ApiResponse(response_data(response, expand))


# --- Metrics -------------------------------------------------------------------------------


def _local_date(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def _percent(count: int, total: int) -> float:
    return round(100.0 * count / total, 1) if total else 0.0


class MetricsApi(DelightedApi):
    """Delighted's core metrics from the product's metrics service (insights.metrics), so
    the figures are the dashboard's. The window is whole days in the organization's time
    zone: the days holding `since` and `until`."""

    def get(self, request):
        params = self.params()
        groups = set(_as_list(params.get("groups"))) or {"core"}
        if groups - {"core"}:
            raise Unprocessable(
                {"groups": ["Only the core group (NPS and response counts) is available."]}
            )
        zone = ZoneInfo(self.organization.timezone or "UTC")
        today = _local_date(datetime.now(tz=zone), zone)
        until = today
        since = date(2000, 1, 1)
        if params.get("until") not in (None, ""):
            until = _local_date(services.epoch_param(params["until"], "until"), zone)
        if params.get("since") not in (None, ""):
            since = _local_date(services.epoch_param(params["since"], "since"), zone)
        if since > until:
            raise Unprocessable({"since": ["since must be before until."]})
        trend = _id_param(params, "trend")
        if trend is not None and not selectors.segment_exists(self.organization, trend):
            raise Unprocessable({"trend": ["No trend (segment) has this id."]})
        filters = metrics.Filters(since=since, until=until, segment_id=trend)
        nps = metrics.headline(self.organization, filters)
        return ApiResponse(
            {
                "nps": round(nps.nps) if nps.nps is not None else None,
                "promoter_count": nps.promoters,
                "promoter_percent": _percent(nps.promoters, nps.n),
                "passive_count": nps.passives,
                "passive_percent": _percent(nps.passives, nps.n),
                "detractor_count": nps.detractors,
                "detractor_percent": _percent(nps.detractors, nps.n),
                "response_count": nps.n,
            }
        )


# --- Unsubscribes and bounces --------------------------------------------------------------


def _suppressed_list(view, queryset, stamp: str):
    params = view.params()
    per_page, page = _per_page(params), _page(params)
    queryset = _window(queryset, params, "suppressed_at")
    start = (page - 1) * per_page
    rows = list(queryset[start : start + per_page + 1])
    headers = {}
    if len(rows) > per_page:
        rows = rows[:per_page]
        headers["Link"] = _next_link(view.request, page=str(page + 1))
    return ApiResponse(
        [
            {
                "person_id": str(c.pk),
                "email": c.email,
                "name": c.name or None,
                stamp: epoch(c.suppressed_at),
            }
            for c in rows
        ],
        headers=headers,
    )


class UnsubscribesApi(DelightedApi):
    def get(self, request):
        unsubscribed = selectors.unsubscribed_of(self.organization)
        return _suppressed_list(self, unsubscribed, "unsubscribed_at")

    def post(self, request):
        data = self.body()
        services.unsubscribe(organization=self.organization, email_value=data.get("person_email"))
        return ApiResponse({"ok": True})


class BouncesApi(DelightedApi):
    def get(self, request):
        return _suppressed_list(self, selectors.bounced_of(self.organization), "bounced_at")


# --- Autopilot -----------------------------------------------------------------------------


class AutopilotApi(DelightedApi):
    """GET autopilot/email: the email programme's cadence as Delighted's configuration."""

    def get(self, request):
        programme = services.email_programme_for(self.organization)
        if programme is None:
            return ApiResponse(
                {
                    "platform_id": "email",
                    "active": False,
                    "frequency": None,
                    "created_at": None,
                    "updated_at": None,
                }
            )
        return ApiResponse(
            {
                "platform_id": "email",
                "active": programme.is_active,
                "frequency": programme.every_days * 86400,
                "created_at": epoch(programme.created_at),
                "updated_at": epoch(programme.created_at),
            }
        )


def membership_data(membership) -> dict:
    contact = membership.contact
    next_at = getattr(membership, "next_survey_at", None)
    return {
        "created_at": epoch(membership.created_at),
        "updated_at": epoch(membership.created_at),
        "person": {
            "id": str(contact.pk),
            "name": contact.name or None,
            "email": contact.email,
            "created_at": epoch(contact.created_at),
            "phone_number": contact.phone or None,
            "last_sent_at": epoch(contact.last_surveyed_at),
        },
        "next_survey_request": (
            {
                "id": str(membership.next_invitation_id),
                "created_at": epoch(membership.created_at),
                "survey_scheduled_at": epoch(next_at),
                "properties": contact.properties or {},
            }
            if next_at
            else None
        ),
    }


class AutopilotMembershipsApi(DelightedApi):
    def get(self, request):
        params = self.params()
        per_page = _per_page(params)
        programme = services.email_programme_for(self.organization)
        if programme is None:
            return ApiResponse([])
        memberships = selectors.memberships_of(self.organization, programme)
        person_id = _id_param(params, "person_id")
        if person_id is not None:
            memberships = memberships.filter(contact_id=person_id)
        if params.get("person_email"):
            found = services.person_find(self.organization, f"email:{params['person_email']}")
            memberships = memberships.filter(contact_id=found.pk if found else 0)
        cursor = params.get("page_info")
        if cursor not in (None, ""):
            if whole_number(cursor) is None:
                raise Unprocessable({"page_info": ["page_info is not a cursor from a Link."]})
            memberships = memberships.filter(pk__gt=whole_number(cursor))
        rows = list(memberships[: per_page + 1])
        headers = {}
        if len(rows) > per_page:
            rows = rows[:per_page]
            headers["Link"] = _next_link(request, page_info=str(rows[-1].pk))
        return ApiResponse([membership_data(m) for m in rows], headers=headers)

    def post(self, request):
        membership, properties = services.autopilot_enrol(
            organization=self.organization, data=self.body()
        )
        contact = membership.contact
        return ApiResponse({"person": person_data(contact), "properties": properties})

    def delete(self, request):
        contact = services.autopilot_remove(organization=self.organization, data=self.body())
        if contact is None:
            raise Http404
        return ApiResponse({"person": person_data(contact)})


def not_found(request, rest=""):
    """Any other path under /delighted/v1/: Delighted's 404, as JSON."""
    return JsonResponse(error_body(404), status=404)
