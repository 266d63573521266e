"""The "Moving from Delighted" page: the base URL, the key, what maps to what, and the
organization's two settings (the email programme and the property mapping)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from compat import services
from compat.forms import CompatSettingsForm
from compat.models import DEFAULT_PROPERTY_MAPPING
from nps_platform.access import member_required
from surveys.models import Programme


@member_required("settings")
def guide(request):
    organization = request.organization
    current = services.compat_settings_for(organization)
    programmes = Programme.objects.filter(organization=organization, channel_email=True)
    initial = {
        "email_programme": current.email_programme_id,
        "property_mapping": "\n".join(
            f"{name} = {target}" for name, target in sorted(current.property_mapping.items())
        ),
    }
    form = CompatSettingsForm(request.POST or None, initial=initial, programmes=programmes)
    if request.method == "POST" and form.is_valid():
        try:
            services.compat_settings_save(
                organization=organization,
                mapping_text=form.cleaned_data["property_mapping"],
                email_programme=form.cleaned_data["email_programme"],
            )
        except ValidationError as exc:
            form.add_error("property_mapping", exc)
        else:
            messages.success(request, "Delighted settings saved.")
            return redirect("compat_settings:guide")
    context = {
        "tab": "delighted",
        "form": form,
        "base_url": settings.SITE_URL.rstrip("/") + "/delighted/v1/",
        "defaults": sorted(DEFAULT_PROPERTY_MAPPING.items()),
        "programme": services.email_programme_for(organization),
    }
    return render(request, "compat/guide.html", context)
