"""CSV import pages: upload, map the columns, watch the progress, download the rejects.

Admins only ("imports" area). The work itself is in accounts/imports.py; the rows are
imported by the accounts.run_import task.
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts import import_kinds, imports, selectors
from accounts.models import ImportKind, ImportStatus
from nps_platform.access import member_required
from nps_platform.roles import can

RECENT_IMPORTS = 50


def _tabs(request) -> dict:
    """The accounts section's tabs (accounts/_tabs.html), with Imports current."""
    return {
        "tab": "imports",
        "can_segments": can(request.membership.role, "segments"),
        "can_import": True,
    }


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(
        label="The file holds",
        # Every registered kind, read when the form is built (apps register theirs on start).
        choices=lambda: [(spec.name, spec.label) for spec in import_kinds.all_kinds()],
        initial=ImportKind.ACCOUNTS,
    )
    file = forms.FileField(
        label="CSV file",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
        error_messages={
            "required": "Choose a CSV file to upload.",
            "empty": "The file is empty.",
            "invalid": "Choose a CSV file to upload.",
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[
            "file"
        ].help_text = (
            f"A .csv file with a header row, UTF-8, at most {settings.IMPORT_MAX_UPLOAD_MB} MB."
        )


@require_http_methods(["GET", "POST"])
@member_required("imports")
def import_list(request):
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.import_create(
                organization=request.organization,
                kind=form.cleaned_data["kind"],
                upload=form.cleaned_data["file"],
                created_by=request.user,
            )
        except ValidationError as exc:
            form.add_error("file", exc)
        else:
            messages.success(request, f"“{job.original_name}” is uploaded: map its columns.")
            return redirect("accounts:import_detail", import_id=job.pk)
    context = {
        **_tabs(request),
        "form": form,
        "jobs": list(selectors.imports_of(request.organization)[:RECENT_IMPORTS]),
        "kinds_help": [
            (spec.label, spec.description, imports.fields_help(spec.name))
            for spec in import_kinds.all_kinds()
        ],
    }
    return render(request, "accounts/import_list.html", context)


@require_http_methods(["GET", "POST"])
@member_required("imports")
def import_detail(request, import_id: int):
    job = selectors.get_import_for(request.organization, import_id)
    errors: list[str] = []
    chosen = job.mapping
    if request.method == "POST":
        if job.status != ImportStatus.UPLOADED:
            messages.info(request, "This import has started already.")
            return redirect("accounts:import_detail", import_id=job.pk)
        chosen = {
            header: request.POST.get(f"map-{position}", "")
            for position, header in enumerate(job.headers)
        }
        try:
            imports.import_start(organization=request.organization, job=job, mapping=chosen)
        except ValidationError as exc:
            errors = exc.messages
        else:
            return redirect("accounts:import_detail", import_id=job.pk)
    context = {**_tabs(request), **_progress_context(job), "mapping_errors": errors}
    if job.status == ImportStatus.UPLOADED:
        try:
            preview = imports.preview_of(job)
        except (ValidationError, OSError, ValueError):  # unreadable, gone, or never stored
            preview = None
        context["preview"] = preview
        context["columns"] = [
            {
                "position": position,
                "header": header,
                "samples": preview.samples.get(header, []) if preview else [],
                "choices": imports.target_choices(job.kind, header),
                "selected": chosen.get(header, ""),
            }
            for position, header in enumerate(job.headers)
        ]
    return render(request, "accounts/import_detail.html", context)


@require_GET
@member_required("imports")
def import_progress(request, import_id: int):
    job = selectors.get_import_for(request.organization, import_id)
    return render(request, "accounts/import_progress.html", _progress_context(job))


def _progress_context(job) -> dict:
    """The progress card's "Go to …" link: where the kind's rows can be seen."""
    try:
        spec = import_kinds.get(job.kind)
    except KeyError:
        return {"job": job, "results_url": "accounts:list", "results_label": "the accounts"}
    return {"job": job, "results_url": spec.results_url, "results_label": spec.results_label}


@require_GET
@member_required("imports")
def import_errors(request, import_id: int):
    job = selectors.get_import_for(request.organization, import_id)
    if not job.error_report:
        raise Http404("This import has no error report.")
    try:
        handle = job.error_report.open("rb")
    except FileNotFoundError:
        raise Http404("The error report is no longer available.") from None
    stem = job.original_name.rsplit(".", 1)[0] or "import"
    return FileResponse(
        handle, as_attachment=True, filename=f"{stem}-errors.csv", content_type="text/csv"
    )
