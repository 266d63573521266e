"""Response pages: the explorer and its CSV export, a response's page, and the comment-theme
settings.

Reads go through responses.selectors; the explorer page and the export run a fixed number of
queries whatever the number of rows.
"""

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime, now
from django.views.decorators.http import require_http_methods, require_POST
from django_scopes import scope

from accounts.selectors import account_context, segments_of
from nps_platform.access import member_required
from nps_platform.roles import can
from nps_platform.selectors import members_of
from responses import analysis, events, forms, selectors, services
from responses.models import Response

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
RESULTS_TARGET = "response-results"


# --- The explorer -----------------------------------------------------------------------------


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_http_methods(["GET", "HEAD"])
@member_required("responses")
def explorer(request):
    organization = request.organization
    segment_list = list(segments_of(organization))
    taxonomy = analysis.taxonomy_for(organization)
    members = list(members_of(organization).order_by("user__name", "user__email"))
    filters = selectors.response_filters(organization, request.GET, segment_list=segment_list)
    form = forms.ResponseFilterForm(
        request.GET, segment_list=segment_list, taxonomy=taxonomy, members=members
    )
    responses = selectors.responses_filtered(organization, filters)
    summary = selectors.nps_summary(responses)
    paginator = Paginator(selectors.with_open_tickets(organization, responses), PAGE_SIZE)
    paginator.count = summary.total  # the summary counted the same rows: no second COUNT
    page = paginator.get_page(request.GET.get("page"))
    has_responses = summary.total > 0 or (
        filters.is_filtered and selectors.responses_of(organization).exists()
    )
    context = {
        "form": form,
        "filters": filters,
        "page": page,
        "rows": list(page.object_list),
        "summary": summary,
        "has_responses": has_responses,
        "theme_names": taxonomy.names(),
        "currency": organization.currency,
        "query": _query_without_page(request),
        "today": now().date(),
    }
    if request.htmx and request.htmx.target == RESULTS_TARGET:
        return render(request, "responses/_results.html", context)
    return render(request, "responses/explorer.html", context)


# --- The CSV export ---------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "id",
    "submitted_at",
    "score",
    "category",
    "danger_zone",
    "comment",
    "themes",
    "sentiment",
    "channel",
    "contact_email",
    "contact_name",
    "account_external_id",
    "account_name",
    "arr",
    "tags",
]
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """Text that a spreadsheet would read as a formula gets a leading single quote; numbers
    and other text pass unchanged."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value):
        return value


def _export_row(response: Response) -> list:
    contact, account = response.contact, response.account
    return [
        response.pk,
        response.submitted_at.isoformat(),
        response.score,
        response.category,
        "true" if response.danger_zone else "false",
        response.comment,
        "; ".join(response.themes or []),
        "" if response.sentiment is None else response.sentiment,
        response.channel,
        contact.email if contact else "",
        contact.name if contact else "",
        account.external_id if account else "",
        account.name if account else "",
        "" if account is None or account.arr is None else account.arr,
        "; ".join(response.tags or []),
    ]


def _export_lines(organization, responses):
    writer = csv.writer(_Echo())
    # The stream is read after the view returned, outside the request's tenant scope.
    with scope(organization=organization):
        yield "\ufeff" + writer.writerow(EXPORT_COLUMNS)  # the BOM tells Excel it is UTF-8
        for response in responses.iterator(chunk_size=EXPORT_CHUNK):
            yield writer.writerow([spreadsheet_safe(value) for value in _export_row(response)])


@require_http_methods(["GET", "HEAD"])
@member_required("responses")
def explorer_export(request):
    """The explorer's current filter as CSV, streamed in chunks (one query per chunk)."""
    organization = request.organization
    responses = selectors.responses_filtered(organization, request.GET).select_related(None)
    responses = responses.select_related("contact", "account")
    filename = f"responses-{organization.slug}-{localtime():%Y%m%d-%H%M}.csv"
    streamed = StreamingHttpResponse(
        _export_lines(organization, responses), content_type="text/csv; charset=utf-8"
    )
    streamed["Content-Disposition"] = f'attachment; filename="{filename}"'
    streamed["Cache-Control"] = "no-store"
    return streamed


# --- A response's page ------------------------------------------------------------------------


def _panels(request, response) -> list[dict]:
    """The cards other apps add (the follow-up, …), rendered; empty ones are left out."""
    panels = []
    for panel in events.response_panels():
        result = panel(organization=request.organization, response=response, request=request)
        if not result:
            continue
        html = render_to_string(result["template"], result.get("context") or {}, request=request)
        panels.append({"title": result.get("title", ""), "html": mark_safe(html)})  # noqa: S308
    return panels


@require_http_methods(["GET", "HEAD"])
@member_required("responses")
def response_detail(request, response_id: int):
    organization = request.organization
    response = selectors.get_response_for(organization, response_id)
    taxonomy = analysis.taxonomy_for(organization)
    context = {
        "response": response,
        "ctx": account_context(organization, response.account) if response.account else None,
        "owner": response.account.owner if response.account else None,
        "timeline": selectors.contact_responses(organization, response),
        "theme_names": taxonomy.names(),
        "currency": organization.currency,
        "properties": sorted((response.properties or {}).items()),
        "can_accounts": can(request.membership.role, "accounts"),
        "panels": _panels(request, response),
    }
    return render(request, "responses/detail.html", context)


# --- Comment themes (settings) ----------------------------------------------------------------


def _theme_rows(organization, org_themes):
    """The default themes with the organization's additions, then its own themes."""
    by_slug = {theme.slug: theme for theme in org_themes}
    defaults = [
        {"slug": slug, "name": name, "keywords": words, "addition": by_slug.get(slug)}
        for slug, (name, words) in sorted(analysis.DEFAULT_THEMES.items(), key=lambda i: i[1][0])
    ]
    own = [theme for theme in org_themes if theme.slug not in analysis.DEFAULT_THEMES]
    return defaults, own


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("settings")
def theme_list(request):
    organization = request.organization
    org_themes = list(selectors.themes_of(organization))
    form = forms.ThemeForm(request.POST or None, org_themes=org_themes)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        slug = data["slug"]
        current = next((t for t in org_themes if t.slug == slug), None)
        if current and len(current.keywords) + len(data["keywords"]) > forms.MAX_KEYWORDS:
            form.add_error(
                "keywords",
                f"A theme takes at most {forms.MAX_KEYWORDS} added keywords; "
                f"{current.name} has {len(current.keywords)}.",
            )
        else:
            theme, added, created = services.theme_add_keywords(
                organization=organization,
                slug=slug,
                name=data.get("name", ""),
                keywords=data["keywords"],
            )
            # No theme row and nothing added: every keyword is already a default one.
            theme_name = theme.name if theme else analysis.DEFAULT_THEMES[slug][0]
            if not added:
                messages.info(
                    request, f"Every one of those keywords is already in {theme_name}: no change."
                )
            elif created and slug not in analysis.DEFAULT_THEMES:
                messages.success(
                    request,
                    f"Created the theme “{theme_name}” with {_plural(len(added), 'keyword')}. "
                    "Comments are being analysed again.",
                )
            elif data["theme"] == forms.NEW_THEME:
                messages.success(
                    request,
                    f"“{theme_name}” already exists: added {_plural(len(added), 'keyword')} to "
                    "it. Comments are being analysed again.",
                )
            else:
                messages.success(
                    request,
                    f"Added {_plural(len(added), 'keyword')} to {theme_name}. "
                    "Comments are being analysed again.",
                )
            return redirect("response_settings:themes")
    defaults, own = _theme_rows(organization, org_themes)
    context = {"form": form, "defaults": defaults, "own_themes": own, "tab": "themes"}
    return render(request, "responses/themes.html", context)


@require_POST
@member_required("settings")
def theme_delete(request, theme_id: int):
    organization = request.organization
    theme = selectors.get_theme_for(organization, theme_id)
    is_default = theme.slug in analysis.DEFAULT_THEMES
    with transaction.atomic():
        theme.delete()
        services.responses_reanalyze(organization=organization)
    if is_default:
        messages.success(
            request,
            f"Removed your keywords from {theme.name}; its default keywords stay. "
            "Comments are being analysed again.",
        )
    else:
        messages.success(
            request, f"Deleted the theme “{theme.name}”. Comments are being analysed again."
        )
    return redirect("response_settings:themes")
