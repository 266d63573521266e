"""Survey admin pages: the surveys and programmes list, the survey editor with its live
preview, the programme editor with forecast and coverage, the send log, the organization's
survey settings and the in-app widget's install page.

Every read goes through surveys.selectors and every write through surveys.services; the
list and the send log run a fixed number of queries whatever the number of rows.
"""

import copy
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import redirect, render
from django.utils.timezone import now
from django.views.decorators.http import require_http_methods

from accounts.selectors import segments_of
from nps_platform.access import member_required
from surveys import eligibility, emails, forms, selectors, services
from surveys.models import OPEN_STATES, Invitation, Programme, SkipReason, Survey
from surveys.texts import SURVEY_FIELDS, pick_language, survey_texts

PAGE_SIZE = 50
LIST_HORIZON = timedelta(days=14)
EDITOR_GROUPS = (
    ("The question", ("question",)),
    ("Follow-up prompts", ("prompt_detractor", "prompt_passive", "prompt_promoter")),
    ("Thank-you messages", ("thanks_detractor", "thanks_passive", "thanks_promoter")),
    ("Email", ("email_subject", "email_intro")),
)
REASON_LABELS = {
    **dict(SkipReason.choices),
    eligibility.NOT_DUE: "Asked by this programme within its cycle",
    eligibility.NOT_IN_SEGMENT: "Not in the segment",
}


def cadence_summary(programme: Programme) -> str:
    """ "every 90 days · drip · email" for the list."""
    channels = [
        label
        for on, label in (
            (programme.channel_email, "email"),
            (programme.channel_link, "link"),
            (programme.channel_in_app, "in-app"),
        )
        if on
    ]
    pacing = f"cap {programme.daily_cap}/day" if programme.daily_cap else "drip"
    return " · ".join(
        [f"every {programme.every_days} days", pacing, " + ".join(channels) or "no channel"]
    )


# --- The list -------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@member_required("surveys")
def survey_list(request):
    organization = request.organization
    survey_list = list(selectors.surveys_of(organization))
    programme_list = list(selectors.programmes_of(organization))
    moment = now()
    planned = dict(
        Invitation.objects.filter(
            organization=organization,
            state__in=OPEN_STATES,
            planned_for__gte=moment - timedelta(hours=1),
            planned_for__lt=moment + LIST_HORIZON,
        )
        .order_by()
        .values_list("programme_id")
        .annotate(n=Count("id"))
    )
    for programme in programme_list:
        programme.cadence = cadence_summary(programme)
        programme.planned_soon = planned.get(programme.pk, 0)
    for survey in survey_list:
        languages = ["en", *sorted((survey.translations or {}).keys())]
        survey.languages = ", ".join(dict.fromkeys(languages))
    return render(
        request,
        "surveys/list.html",
        {"surveys": survey_list, "programmes": programme_list, "tab": "list"},
    )


# --- The survey editor ----------------------------------------------------------------------


def _survey_editor(request, survey: Survey | None):
    organization = request.organization
    if request.method == "POST":
        form = forms.SurveyForm(request.POST, survey=survey)
        if form.is_valid():
            try:
                saved = services.survey_save(
                    organization=organization, survey=survey, **form.values()
                )
            except ValidationError as exc:
                form.attach(exc)
            else:
                messages.success(request, f"Survey “{saved.name}” saved.")
                return redirect("surveys:survey_edit", survey_id=saved.pk)
    else:
        form = forms.SurveyForm(survey=survey)
    preview = _preview_context(request, survey, form.data if form.is_bound else None)
    return render(
        request,
        "surveys/survey_form.html",
        {
            "form": form,
            "survey": survey,
            "groups": [(title, form.survey_field_rows(names)) for title, names in EDITOR_GROUPS],
            "preview_url_id": survey.pk if survey else 0,
            "tab": "list",
            **preview,
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("surveys")
def survey_create(request):
    return _survey_editor(request, None)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("surveys")
def survey_edit(request, survey_id: int):
    survey = selectors.get_survey_for(request.organization, survey_id)
    return _survey_editor(request, survey)


def _draft(organization, survey: Survey | None, data) -> Survey:
    """An unsaved copy of the survey with the editor's (unvalidated) input, for the preview."""
    draft = copy.copy(survey) if survey else Survey(organization=organization)
    if data is None:
        return draft
    for name in (*SURVEY_FIELDS, "logo_url", "brand_color", "sender_name"):
        if name in data:
            setattr(draft, name, str(data.get(name, ""))[:2000])
    translations = {}
    for lang in forms.TRANSLATION_LANGUAGES:
        texts = {
            name: str(data.get(f"{lang}_{name}", "")).strip()[:2000]
            for name in SURVEY_FIELDS
            if str(data.get(f"{lang}_{name}", "")).strip()
        }
        if texts:
            translations[lang] = texts
    draft.translations = translations
    return draft


def _preview_context(request, survey: Survey | None, data) -> dict:
    organization = request.organization
    draft = _draft(organization, survey, data)
    raw_lang = (data or {}).get("preview_lang") or request.GET.get("lang") or "en"
    language = pick_language(str(raw_lang)[:20], ("en", *forms.TRANSLATION_LANGUAGES))
    try:
        subject, _text, html = emails.render_preview_email(draft, organization, language)
        words = survey_texts(draft, language, organization)
        error = ""
    except Exception as exc:  # the preview of a draft must never fail the page
        subject, html, words = "", "", None
        error = f"The preview could not be rendered: {type(exc).__name__}."
    brand, on_brand = emails.brand_colors(draft.brand_color)
    return {
        "preview": {
            "language": language,
            "subject": subject,
            "html": html,
            "words": words,
            "brand": brand,
            "on_brand": on_brand,
            "scores": range(11),
            "error": error,
            "logo_url": draft.logo_url if str(draft.logo_url).startswith("https://") else "",
        }
    }


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("surveys")
def survey_preview(request, survey_id: int):
    """The live preview partial: POST the editor's form (survey_id 0 for a new survey)."""
    survey = selectors.get_survey_for(request.organization, survey_id) if survey_id else None
    data = request.POST if request.method == "POST" else None
    return render(request, "surveys/_preview.html", _preview_context(request, survey, data))


# --- The programme editor -------------------------------------------------------------------


def _eligible_summary(organization, programme: Programme) -> dict:
    with eligibility.roomy_sql():
        rows = (
            eligibility.skip_reasons(
                organization=organization,
                programme=programme,
                fatigue_days=eligibility.fatigue_days_of(organization),
            )
            .order_by()
            .values("skip_reason")
            .annotate(n=Count("id"))
        )
        counts = {row["skip_reason"]: row["n"] for row in rows}
    eligible = counts.pop(None, 0)
    skipped = [
        {"reason": reason, "label": REASON_LABELS.get(reason, reason), "n": n}
        for reason, n in sorted(counts.items(), key=lambda item: -item[1])
    ]
    return {"eligible": eligible, "skipped": skipped, "skipped_total": sum(counts.values())}


def _programme_editor(request, programme: Programme | None):
    organization = request.organization
    survey_choices = list(selectors.surveys_of(organization))
    segment_choices = list(segments_of(organization).order_by("name"))
    kwargs = {"surveys": survey_choices, "segments": segment_choices}
    if request.method == "POST":
        form = forms.ProgrammeForm(request.POST, **kwargs)
        if form.is_valid():
            try:
                saved = services.programme_save(
                    organization=organization, programme=programme, **form.values()
                )
            except ValidationError as exc:
                form.attach(exc)
            else:
                messages.success(request, f"Programme “{saved.name}” saved.")
                return redirect("surveys:programme_edit", programme_id=saved.pk)
    else:
        template = programme or Programme(
            organization=organization,
            survey=survey_choices[0] if len(survey_choices) == 1 else None,
        )
        form = forms.ProgrammeForm(initial=forms.ProgrammeForm.initial_for(template), **kwargs)
    context = {
        "form": form,
        "programme": programme,
        "settings_row": services.survey_settings_for(organization),
        "has_surveys": bool(survey_choices),
        "tab": "list",
    }
    if programme is not None:
        programme.refresh_from_db()  # a failed save must not show half-applied values
        forecast = selectors.programme_forecast(organization, programme)
        peak = max([day.sends for day in forecast.days] + [1])
        for day in forecast.days:
            day.width = round(100 * day.sends / peak)
        context.update(
            forecast=forecast,
            coverage=selectors.programme_coverage(organization, programme),
            summary=_eligible_summary(organization, programme),
        )
    return render(
        request,
        "surveys/programme_form.html",
        context,
        status=400 if form.is_bound and form.errors else 200,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("surveys")
def programme_create(request):
    return _programme_editor(request, None)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("surveys")
def programme_edit(request, programme_id: int):
    programme = selectors.get_programme_for(request.organization, programme_id)
    return _programme_editor(request, programme)


# --- The send log ---------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@member_required("surveys")
def send_log(request):
    organization = request.organization
    programme_list = list(selectors.programmes_of(organization))
    form = forms.SendLogFilterForm(request.GET, programmes=programme_list)
    values = form.values()
    invitations = selectors.invitations_of(organization, **values)
    page = Paginator(invitations, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "surveys/send_log.html",
        {
            "form": form,
            "page": page,
            "filtered": any(values.values()),
            "query": query.urlencode(),
            "tab": "log",
        },
    )


# --- Settings and the in-app widget ---------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@member_required("surveys")
def survey_settings(request):
    organization = request.organization
    settings_row = services.survey_settings_for(organization)
    if request.method == "POST":
        form = forms.SurveySettingsForm(request.POST)
        if form.is_valid():
            try:
                services.survey_settings_save(
                    organization=organization,
                    fatigue_days=form.cleaned_data["fatigue_days"],
                    postal_address=form.cleaned_data["postal_address"],
                )
            except ValidationError as exc:
                form.attach(exc)
            else:
                messages.success(request, "Survey settings saved.")
                return redirect("surveys:settings")
    else:
        form = forms.SurveySettingsForm(
            initial={
                "fatigue_days": settings_row.fatigue_days,
                "postal_address": settings_row.postal_address,
            }
        )
    return render(
        request,
        "surveys/settings.html",
        {"form": form, "tab": "settings"},
        status=400 if form.is_bound and form.errors else 200,
    )


@require_http_methods(["GET", "HEAD"])
@member_required("surveys")
def in_app_install(request):
    settings_row = services.survey_settings_for(request.organization)
    secret = settings_row.identity_secret
    return render(
        request,
        "surveys/in_app_install.html",
        {
            "publishable_key": settings_row.publishable_key,
            "identity_secret": secret,
            "masked_secret": secret[:3] + "•" * 12 + secret[-4:],
            "tab": "in_app",
        },
    )
