"""Follow-up pages: the CS queue, a follow-up's page with its actions, and the playbook
settings.

Reads go through followups.selectors and writes through followups.services. Every POST
redirects back with a message when it worked; when it did not, the page is shown again with
the error next to the form that caused it (and the typed text kept).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timezone import now
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import account_context, monthly_active_users, segments_of
from followups import drafts, forms, selectors, services
from followups.models import Playbook, Status
from nps_platform.access import member_required
from nps_platform.roles import can
from responses import analysis

PAGE_SIZE = 50
RESULTS_TARGET = "queue-results"
HISTORY_SHOWN = 10


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [m for messages_ in exc.message_dict.values() for m in messages_]
    return list(exc.messages)


def _form_errors(form) -> list[str]:
    return [str(e) for errors in form.errors.values() for e in errors]


def _add_errors(form, exc: ValidationError) -> None:
    """A service's ValidationError onto the form: on the field it names when the form has
    it, otherwise as a form-wide error."""
    if hasattr(exc, "message_dict"):
        for field, errors in exc.message_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
    else:
        for error in exc.messages:
            form.add_error(None, error)


# --- The queue -------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD"])
@member_required("queue")
def queue(request):
    organization = request.organization
    segment_list = list(segments_of(organization))
    taxonomy = analysis.taxonomy_for(organization)
    workers = selectors.workers_of(organization)
    filters = selectors.queue_filters(organization, request.GET, segment_list=segment_list)
    moment = now()
    counts = selectors.tab_counts(organization, filters, user=request.user, moment=moment)
    paginator = Paginator(
        selectors.queue(organization, filters, user=request.user, moment=moment), PAGE_SIZE
    )
    paginator.count = counts[filters.tab]  # counted with the tabs: no second COUNT
    page = paginator.get_page(request.GET.get("page"))
    rows = list(page.object_list)
    for followup in rows:
        followup.sla = selectors.sla_badge(followup, moment)
        followup.top_reason = selectors.top_reason(followup)
        followup.reasons_title = selectors.reasons_title(followup)
    data = request.GET.copy()
    data["tab"] = filters.tab
    context = {
        "form": forms.QueueFilterForm(
            data, segment_list=segment_list, taxonomy=taxonomy, workers=workers
        ),
        "filters": filters,
        "tabs": [(key, label, counts[key]) for key, label in selectors.TABS.items()],
        "page": page,
        "rows": rows,
        "workers": workers,
        "theme_names": taxonomy.names(),
        "currency": organization.currency,
        "is_empty": not filters.is_filtered and not any(counts.values()),
        "here": request.get_full_path(),
    }
    if request.htmx and request.htmx.target == RESULTS_TARGET:
        return render(request, "followups/_queue_results.html", {**context, "partial": True})
    return render(request, "followups/queue.html", context)


def _back_to_queue(request) -> str:
    target = request.POST.get("next", "")
    if (
        target.startswith("/queue/")
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
        and "\\" not in target
    ):
        return target
    return reverse("followups:queue")


@require_POST
@member_required("queue")
def queue_bulk_assign(request):
    organization = request.organization
    back = _back_to_queue(request)
    form = forms.BulkAssignForm(request.POST, workers=selectors.workers_of(organization))
    if not form.is_valid():
        for error in _form_errors(form):
            messages.error(request, error)
        return redirect(back)
    assignee = selectors.get_worker_for(organization, form.cleaned_data["assignee"])
    try:
        changed = services.followups_bulk_assign(
            organization=organization,
            followup_ids=form.cleaned_data["followup"],
            actor=request.user,
            assignee=assignee,
        )
    except ValidationError as exc:
        for error in _errors(exc):
            messages.error(request, error)
        return redirect(back)
    if changed:
        messages.success(
            request,
            f"Assigned {changed} follow-up{'' if changed == 1 else 's'} to "
            f"{assignee.display_name}.",
        )
    else:
        messages.info(request, f"Those follow-ups were already {assignee.display_name}'s.")
    return redirect(back)


# --- A follow-up's page ----------------------------------------------------------------------


def _detail_context(request, followup, **bound) -> dict:
    organization = request.organization
    response = followup.response
    account = followup.account
    workers = selectors.workers_of(organization)
    answers = selectors.account_responses(organization, account)
    history = answers[:HISTORY_SHOWN]
    if response is not None and all(r.pk != response.pk for r in history):
        history.append(response)  # an older answer still shows itself
    context = {
        "followup": followup,
        "response": response,
        "contact": followup.contact,
        "ctx": account_context(organization, account) if account else None,
        "usage_series": monthly_active_users(organization, account) if account else [],
        "history": history,
        "history_more": max(0, len(answers) - len(history)),
        "others": selectors.other_contacts_latest(answers, followup),
        "reasons": sorted(followup.priority_reasons or [], key=lambda r: -r.get("points", 0)),
        "sla": selectors.sla_badge(followup),
        "activities": selectors.activities_of(organization, followup),
        "theme_names": analysis.taxonomy_for(organization).names(),
        "currency": organization.currency,
        "workers": workers,
        "can_accounts": can(request.membership.role, "accounts"),
        "can_responses": can(request.membership.role, "responses"),
        "sender": followup.assignee or request.user,
        "draft_form": bound.get("draft_form")
        or forms.DraftForm(
            initial={"subject": followup.draft_subject, "body": followup.draft_body}
        ),
        "draft_errors": bound.get("draft_errors", []),
        "log_form": bound.get("log_form") or forms.LogForm(),
        "status_form": bound.get("status_form")
        or forms.StatusForm(
            initial={"status": followup.status if followup.is_open else Status.IN_PROGRESS}
        ),
        "assign_form": bound.get("assign_form")
        or forms.AssignForm(
            workers=workers,
            initial={"assignee": str(followup.assignee_id or "")},
        ),
        "close_form": bound.get("close_form") or forms.CloseForm(),
    }
    return context


def _show_again(request, followup, message: str, **bound):
    messages.error(request, message)
    return render(request, "followups/detail.html", _detail_context(request, followup, **bound))


def _back(followup, anchor: str = ""):
    return redirect(reverse("followups:detail", args=[followup.pk]) + anchor)


@require_http_methods(["GET", "HEAD"])
@member_required("queue")
def followup_detail(request, followup_id: int):
    followup = selectors.get_followup_for(request.organization, followup_id)
    return render(request, "followups/detail.html", _detail_context(request, followup))


@require_http_methods(["GET", "HEAD"])
@member_required("queue")
def followup_activity(request, followup_id: int):
    """The activity log alone, for htmx to refresh it in place."""
    followup = selectors.get_followup_for(request.organization, followup_id)
    if not request.htmx:
        return _back(followup, "#activity")
    return render(
        request,
        "followups/_activity.html",
        {
            "followup": followup,
            "activities": selectors.activities_of(request.organization, followup),
            "log_form": forms.LogForm(),
        },
    )


@require_POST
@member_required("queue")
def followup_draft_save(request, followup_id: int):
    organization = request.organization
    followup = selectors.get_followup_for(organization, followup_id)
    form = forms.DraftForm(request.POST)
    if not form.is_valid():
        return _show_again(
            request, followup, "The draft was not saved.", draft_form=form,
            draft_errors=_form_errors(form),
        )  # fmt: skip
    services.followup_save_draft(
        organization=organization,
        followup=followup,
        actor=request.user,
        subject=form.cleaned_data["subject"],
        body=form.cleaned_data["body"],
    )
    messages.success(request, "Draft saved.")
    return _back(followup, "#draft")


@require_POST
@member_required("queue")
def followup_send(request, followup_id: int):
    organization = request.organization
    followup = selectors.get_followup_for(organization, followup_id)
    form = forms.DraftForm(request.POST)
    if not form.is_valid():
        return _show_again(
            request, followup, "The email was not sent.", draft_form=form,
            draft_errors=_form_errors(form),
        )  # fmt: skip
    try:
        services.followup_send_email(
            organization=organization,
            followup=followup,
            actor=request.user,
            subject=form.cleaned_data["subject"],
            body=form.cleaned_data["body"],
        )
    except ValidationError as exc:
        errors = _errors(exc)
        return _show_again(
            request, followup, f"The email was not sent: {errors[0]}", draft_form=form,
            draft_errors=errors,
        )  # fmt: skip
    messages.success(request, f"Email sent to {followup.contact.email}.")
    return _back(followup, "#activity")


@require_POST
@member_required("queue")
def followup_log(request, followup_id: int):
    organization = request.organization
    followup = selectors.get_followup_for(organization, followup_id)
    form = forms.LogForm(request.POST)
    if form.is_valid():
        try:
            services.followup_log(
                organization=organization,
                followup=followup,
                actor=request.user,
                kind=form.cleaned_data["kind"],
                message=form.cleaned_data["message"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    ok = form.is_valid() and not form.errors
    if request.htmx:
        return render(
            request,
            "followups/_activity.html",
            {
                "followup": followup,
                "activities": selectors.activities_of(organization, followup),
                "log_form": forms.LogForm() if ok else form,
                "logged": ok,
            },
        )
    if not ok:
        return _show_again(request, followup, "Nothing was logged.", log_form=form)
    kind = "Call" if form.cleaned_data["kind"] == "call" else "Note"
    messages.success(request, f"{kind} logged.")
    return _back(followup, "#activity")


@require_POST
@member_required("queue")
def followup_status(request, followup_id: int):
    organization = request.organization
    followup = selectors.get_followup_for(organization, followup_id)
    form = forms.StatusForm(request.POST)
    if not form.is_valid():
        return _show_again(request, followup, "The status did not change.", status_form=form)
    was_closed = not followup.is_open
    try:
        services.followup_change_status(
            organization=organization,
            followup=followup,
            actor=request.user,
            status=form.cleaned_data["status"],
        )
    except ValidationError as exc:
        _add_errors(form, exc)
        return _show_again(request, followup, "The status did not change.", status_form=form)
    verb = "Reopened as" if was_closed else "Status:"
    messages.success(request, f"{verb} {followup.get_status_display()}.")
    return _back(followup)


@require_POST
@member_required("queue")
def followup_assign(request, followup_id: int):
    organization = request.organization
    followup = selectors.get_followup_for(organization, followup_id)
    workers = selectors.workers_of(organization)
    form = forms.AssignForm(request.POST, workers=workers)
    if not form.is_valid():
        return _show_again(request, followup, "The follow-up was not reassigned.", assign_form=form)
    chosen = form.cleaned_data["assignee"]
    assignee = selectors.get_worker_for(organization, chosen) if chosen else None
    try:
        services.followup_assign(
            organization=organization, followup=followup, actor=request.user, assignee=assignee
        )
    except ValidationError as exc:
        _add_errors(form, exc)
        return _show_again(request, followup, "The follow-up was not reassigned.", assign_form=form)
    if assignee:
        messages.success(request, f"Assigned to {assignee.display_name}.")
    else:
        messages.success(request, "The follow-up is now unassigned.")
    return _back(followup)


@require_POST
@member_required("queue")
def followup_close(request, followup_id: int):
    organization = request.organization
    followup = selectors.get_followup_for(organization, followup_id)
    form = forms.CloseForm(request.POST)
    if form.is_valid():
        try:
            services.followup_close(
                organization=organization,
                followup=followup,
                actor=request.user,
                outcome=form.cleaned_data["outcome"],
                notes=form.cleaned_data["notes"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _show_again(
            request,
            followup,
            "The follow-up is still open: " + _form_errors(form)[0],
            close_form=form,
        )
    messages.success(request, f"Closed: {followup.get_outcome_display()}.")
    return _back(followup)


# --- Playbook settings -----------------------------------------------------------------------


def _template_values(organization, templates, playbook) -> dict:
    saved = templates.get(playbook)
    default = drafts.DEFAULTS[playbook]
    if saved is None:
        return {
            "playbook": playbook,
            "subject": default["subject"],
            "body": default["body"],
            "sla_hours": default["sla_hours"],
        }
    return {
        "playbook": playbook,
        "subject": saved.subject,
        "body": saved.body,
        "sla_hours": saved.sla_hours,
    }


def _preview(organization, playbook, subject, body, *, owner) -> dict:
    context, response = selectors.preview_context(organization, playbook, owner=owner)
    rendered = drafts.render(subject, body, context)
    failed = bool(rendered.problems) and not rendered.subject and not rendered.body.strip()
    return {
        "playbook": playbook,
        "rendered": rendered,
        "failed": failed,
        "response": response,
        "variables": selectors.flatten_variables(context),
    }


def _settings_context(request, *, bound=None, previews=None, **forms_) -> dict:
    """The whole settings page; `bound` replaces one playbook's form (with typed values or
    errors) and `previews` that playbook's preview."""
    organization = request.organization
    bound, previews = bound or {}, previews or {}
    templates = selectors.templates_of(organization)
    workers = selectors.workers_of(organization)
    members = selectors.members_of(organization)
    segment_list = list(segments_of(organization))
    playbooks = []
    for playbook in Playbook:
        values = _template_values(organization, templates, playbook)
        form = bound.get(playbook) or forms.PlaybookTemplateForm(initial=values, playbook=playbook)
        preview = previews.get(playbook) or _preview(
            organization, playbook, values["subject"], values["body"], owner=request.user
        )
        playbooks.append(
            {
                "key": playbook.value,
                "label": playbook.label,
                "form": form,
                "preview": preview,
                "customized": playbook in templates,
                "saved": templates.get(playbook),
                "default_sla": drafts.DEFAULTS[playbook]["sla_hours"],
            }
        )
    found = services.settings_for(organization)
    today = now().date()
    return {
        "tab": "playbooks",
        "playbooks": playbooks,
        "rules": selectors.rules_of(organization),
        "pauses": selectors.pauses_of(organization),
        "today": today,
        "segments_exist": bool(segment_list),
        "rule_form": forms_.get("rule_form")
        or forms.AssignmentRuleForm(segment_list=segment_list, workers=workers),
        "pause_form": forms_.get("pause_form") or forms.MemberPauseForm(members=members),
        "options_form": forms_.get("options_form")
        or forms.FollowUpSettingsForm(
            initial={
                "auto_send_thanks": found.auto_send_thanks,
                "escalate_after_hours": found.escalate_after_hours,
            }
        ),
        "settings": found,
    }


def _settings_again(request, message: str, **kwargs):
    messages.error(request, message)
    return render(request, "followups/settings.html", _settings_context(request, **kwargs))


@require_http_methods(["GET", "HEAD"])
@member_required("settings")
def playbook_settings(request):
    return render(request, "followups/settings.html", _settings_context(request))


def _playbook_of(request) -> str | None:
    playbook = request.POST.get("playbook", "")
    return playbook if playbook in Playbook.values else None


@require_POST
@member_required("settings")
def playbook_preview(request):
    """The draft a template makes on a real recent answer, as typed (not saved)."""
    organization = request.organization
    playbook = _playbook_of(request)
    if playbook is None:
        return HttpResponse("Unknown playbook.", status=400, content_type="text/plain")
    subject = request.POST.get("subject", "")[:300]
    body = request.POST.get("body", "")[:20000]
    preview = _preview(organization, playbook, subject, body, owner=request.user)
    if request.htmx:
        return render(request, "followups/_preview.html", {"preview": preview})
    form = forms.PlaybookTemplateForm(request.POST, playbook=playbook)
    form.is_valid()  # shows the typed values, and what is missing
    return render(
        request,
        "followups/settings.html",
        _settings_context(request, bound={playbook: form}, previews={playbook: preview}),
    )


@require_POST
@member_required("settings")
def playbook_template_save(request):
    organization = request.organization
    playbook = _playbook_of(request)
    if playbook is None:
        messages.error(request, "Choose a playbook.")
        return redirect("followup_settings:playbooks")
    label = Playbook(playbook).label
    anchor = f"#playbook-{playbook}"
    if request.POST.get("action") == "reset":
        services.playbook_template_reset(organization=organization, playbook=playbook)
        messages.success(request, f"“{label}” is back to the default template and SLA.")
        return redirect(reverse("followup_settings:playbooks") + anchor)
    form = forms.PlaybookTemplateForm(request.POST, playbook=playbook)
    if form.is_valid():
        try:
            services.playbook_template_save(
                organization=organization,
                playbook=playbook,
                subject=form.cleaned_data["subject"],
                body=form.cleaned_data["body"],
                sla_hours=form.cleaned_data["sla_hours"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        preview = _preview(
            organization,
            playbook,
            request.POST.get("subject", ""),
            request.POST.get("body", ""),
            owner=request.user,
        )
        return _settings_again(
            request,
            f"“{label}” was not saved: " + _form_errors(form)[0],
            bound={playbook: form},
            previews={playbook: preview},
        )
    preview = _preview(
        organization,
        playbook,
        form.cleaned_data["subject"],
        form.cleaned_data["body"],
        owner=request.user,
    )
    unknown = [p for p in preview["rendered"].problems if p.startswith("Unknown variable")]
    if unknown:
        messages.warning(
            request,
            f"“{label}” saved, but drafts will show {' '.join(unknown)} "
            "Fix it before the next answer arrives.",
        )
    else:
        messages.success(request, f"“{label}” saved. New follow-ups use it.")
    return redirect(reverse("followup_settings:playbooks") + anchor)


@require_POST
@member_required("settings")
def assignment_rule_add(request):
    organization = request.organization
    segment_list = list(segments_of(organization))
    workers = selectors.workers_of(organization)
    form = forms.AssignmentRuleForm(request.POST, segment_list=segment_list, workers=workers)
    if form.is_valid():
        segment = next(s for s in segment_list if str(s.pk) == form.cleaned_data["segment"])
        try:
            rule = services.assignment_rule_save(
                organization=organization,
                segment=segment,
                assignee=selectors.get_worker_for(organization, form.cleaned_data["assignee"]),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _settings_again(request, "The rule was not added.", rule_form=form)
    messages.success(
        request, f"Added: accounts in “{rule.segment.name}” go to {rule.assignee.display_name}."
    )
    return redirect(reverse("followup_settings:playbooks") + "#assignment")


@require_POST
@member_required("settings")
def assignment_rule_delete(request, rule_id: int):
    organization = request.organization
    rule = selectors.get_rule_for(organization, rule_id)
    services.assignment_rule_delete(organization=organization, rule=rule)
    messages.success(request, "Rule deleted.")
    return redirect(reverse("followup_settings:playbooks") + "#assignment")


@require_POST
@member_required("settings")
def member_pause_add(request):
    organization = request.organization
    members = selectors.members_of(organization)
    form = forms.MemberPauseForm(request.POST, members=members)
    if form.is_valid():
        user = selectors.get_member_for(organization, form.cleaned_data["user"])
        try:
            services.member_pause_set(
                organization=organization, user=user, until=form.cleaned_data["until"]
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _settings_again(request, "Nobody was paused.", pause_form=form)
    until = form.cleaned_data["until"]
    messages.success(
        request,
        f"{user.display_name} is paused "
        + (f"until {until:%d %b %Y}" if until else "until you resume them")
        + ": no new follow-ups go to them.",
    )
    return redirect(reverse("followup_settings:playbooks") + "#pauses")


@require_POST
@member_required("settings")
def member_pause_resume(request, pause_id: int):
    organization = request.organization
    pause = selectors.get_pause_for(organization, pause_id)
    services.member_pause_clear(organization=organization, pause=pause)
    messages.success(request, f"{pause.user.display_name} receives follow-ups again.")
    return redirect(reverse("followup_settings:playbooks") + "#pauses")


@require_POST
@member_required("settings")
def followup_options_save(request):
    organization = request.organization
    form = forms.FollowUpSettingsForm(request.POST)
    if form.is_valid():
        try:
            services.followup_settings_save(
                organization=organization,
                auto_send_thanks=form.cleaned_data["auto_send_thanks"],
                escalate_after_hours=form.cleaned_data["escalate_after_hours"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _settings_again(request, "The options were not saved.", options_form=form)
    if form.cleaned_data["auto_send_thanks"]:
        messages.success(
            request,
            "Saved. Promoter thank-yous and passive nudges now go out automatically; "
            "detractors still always get a person.",
        )
    else:
        messages.success(request, "Saved. Every follow-up email is sent by a person.")
    return redirect(reverse("followup_settings:playbooks") + "#options")
