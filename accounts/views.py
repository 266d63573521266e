"""Account pages: the accounts list, an account's page, and the segment editor.

Every read goes through accounts.selectors and every write through accounts.services; the
list and the account page run a fixed number of queries whatever the number of rows.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from accounts import events, forms, segments, selectors, services
from nps_platform.access import member_required
from nps_platform.params import whole_number
from nps_platform.roles import can
from nps_platform.selectors import members_of

PAGE_SIZE = 50
RECENT_CONTACTS = 50


def _nav(request, tab: str) -> dict:
    """What the section's tabs show: segments and imports are for the roles that may open them."""
    role = request.membership.role
    return {"tab": tab, "can_segments": can(role, "segments"), "can_import": can(role, "imports")}


# --- The accounts list ----------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@member_required("accounts")
def account_list(request):
    organization = request.organization
    segment_list = list(selectors.segments_of(organization))
    members = list(members_of(organization).order_by("user__name", "user__email"))
    form = forms.AccountFilterForm(
        request.GET,
        segment_list=segment_list,
        plans=selectors.plans_of(organization),
        members=members,
    )
    values = form.values()
    segment = next((s for s in segment_list if str(s.pk) == values["segment"]), None)
    accounts = selectors.accounts_filtered(
        organization,
        q=values["q"],
        rules=segment.rules if segment else None,
        plan=values["plan"],
        owner=values["owner"],
        health=values["health"],
        stage=values["stage"],
        sort=values["sort"],
    )
    page = Paginator(accounts, PAGE_SIZE).get_page(request.GET.get("page"))
    filtered = form.is_filtered
    has_accounts = page.paginator.count > 0 or (
        filtered and selectors.accounts_of(organization).exists()
    )
    context = {
        "form": form,
        "values": values,
        "page": page,
        "accounts": page.object_list,
        "filtered": filtered,
        "has_accounts": has_accounts,
        "segment": segment,
        "sort_label": selectors.ACCOUNT_SORTS[values["sort"]][0],
        "currency": organization.currency,
        **_nav(request, "accounts"),
    }
    if request.htmx and request.htmx.target == "account-results":
        return render(request, "accounts/_results.html", context)
    return render(request, "accounts/list.html", context)


# --- The account page -----------------------------------------------------------------------


def _panels(request, account) -> list[dict]:
    """The panels other apps add (the NPS history, …), rendered; empty ones are left out."""
    panels = []
    for panel in events.account_panels():
        result = panel(organization=request.organization, account=account)
        if not result:
            continue
        html = render_to_string(result["template"], result.get("context") or {}, request=request)
        panels.append({"title": result.get("title", ""), "html": mark_safe(html)})  # noqa: S308
    return panels


@require_http_methods(["GET", "HEAD"])
@member_required("accounts")
def account_detail(request, account_id: int):
    organization = request.organization
    account = selectors.get_account_for(organization, account_id)
    account_context = selectors.account_context(organization, account)
    contacts = list(selectors.contacts_of_account(organization, account)[: RECENT_CONTACTS + 1])
    more_contacts = None
    if len(contacts) > RECENT_CONTACTS:
        contacts = contacts[:RECENT_CONTACTS]
        more_contacts = (
            selectors.contacts_of_account(organization, account).count() - RECENT_CONTACTS
        )
    usage = selectors.monthly_active_users(organization, account)
    context = {
        "account": account,
        "ctx": account_context,
        "trend": account_context.usage_trend,
        "contacts": contacts,
        "more_contacts": more_contacts,
        "usage": usage,
        "has_usage": any(value is not None for _, value in usage),
        "panels": _panels(request, account),
        "properties": sorted((account.properties or {}).items()),
        "currency": organization.currency,
        "renewal_soon": account_context.renewal_in_days is not None
        and account_context.renewal_in_days <= 90,
        **_nav(request, "accounts"),
    }
    return render(request, "accounts/detail.html", context)


# --- Segments -------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@member_required("segments")
def segment_list(request):
    rows = [
        {"segment": segment, "rule": segments.describe(segment.rules)}
        for segment in selectors.segments_of(request.organization).select_related("created_by")
    ]
    return render(
        request, "accounts/segment_list.html", {"rows": rows, **_nav(request, "segments")}
    )


def _segment_editor(request, segment=None):
    organization = request.organization
    rules = segment.rules if segment else {"match": "all", "conditions": []}
    if request.method == "POST":
        form = forms.SegmentForm(request.POST)
        formset = forms.condition_formset(request.POST)
    else:
        initial = (
            {"name": segment.name, "description": segment.description, "match": rules["match"]}
            if segment
            else None
        )
        form = forms.SegmentForm(initial=initial)
        formset = forms.condition_formset(conditions=rules.get("conditions", []))
    form_valid = form.is_valid() if request.method == "POST" else False
    if request.method == "POST" and form_valid and formset.is_valid():
        try:
            saved = services.segment_save(
                organization=organization,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                rules={"match": form.cleaned_data["match"], "conditions": formset.conditions()},
                segment=segment,
                created_by=request.user,
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for name, errors in exc.message_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                form.add_error(None, exc.messages)
        else:
            verb = "saved" if segment else "created"
            messages.success(request, f"Segment “{saved.name}” {verb}.")
            return redirect("accounts:segments")
    counts = None
    if request.method == "GET":
        counts = selectors.segment_counts(organization, rules) if segment else None
    context = {
        "form": form,
        "formset": formset,
        "segment": segment,
        "counts": counts,
        "formset_error": formset.first_error() if request.method == "POST" else None,
        "field_kinds": _field_kinds(),
        **_nav(request, "segments"),
    }
    return render(request, "accounts/segment_form.html", context)


def _field_kinds() -> dict[str, dict]:
    """Each field's value type and the comparisons it takes, for the editor's script."""
    names = [*segments.ACCOUNT_FIELDS, *segments.CONTACT_FIELDS, *forms.PROPERTY_FIELDS]
    return {
        name: {"kind": forms.field_kind(name), "ops": sorted(forms.ops_for(name))} for name in names
    }


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("segments")
def segment_create(request):
    return _segment_editor(request)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("segments")
def segment_edit(request, segment_id: int):
    segment = selectors.get_segment_for(request.organization, segment_id)
    return _segment_editor(request, segment)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("segments")
def segment_delete(request, segment_id: int):
    segment = selectors.get_segment_for(request.organization, segment_id)
    if request.method == "POST":
        services.segment_delete(organization=request.organization, segment=segment)
        messages.success(request, f"Segment “{segment.name}” deleted.")
        return redirect("accounts:segments")
    return render(
        request,
        "accounts/segment_delete.html",
        {
            "segment": segment,
            "rule": segments.describe(segment.rules),
            **_nav(request, "segments"),
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("segments")
def segment_preview(request):
    """The live count of a segment: GET ?segment=<id> for a saved one (the list loads these
    one by one), POST the editor's form for a draft. Always answers a small partial."""
    organization = request.organization
    context = {"error": None, "counts": None, "segment": None}
    if request.method == "POST":
        formset = forms.condition_formset(request.POST)
        match = request.POST.get("match", "all")
        if not formset.is_valid():
            context["error"] = formset.first_error() or "Check the conditions."
        else:
            try:
                rules = segments.validate_rules(
                    {"match": match, "conditions": formset.conditions()}
                )
            except ValidationError as exc:
                context["error"] = " ".join(exc.messages)
            else:
                context["counts"] = selectors.segment_counts(organization, rules)
                context["empty_rule"] = not rules["conditions"]
    else:
        segment_id = request.GET.get("segment", "")
        if whole_number(segment_id) is None:
            context["error"] = "Name a segment to count."
        else:
            segment = selectors.get_segment_for(organization, whole_number(segment_id))
            context["segment"] = segment
            context["counts"] = selectors.segment_counts(organization, segment.rules)
            context["compact"] = True
    return render(request, "accounts/_segment_count.html", context)
