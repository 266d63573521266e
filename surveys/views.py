"""Survey admin pages (stub: to be written)."""

from django.shortcuts import render

from nps_platform.access import member_required


@member_required("surveys")
def survey_list(request):
    return render(request, "surveys/list.html")


survey_create = survey_edit = survey_preview = programme_create = programme_edit = survey_list
send_log = survey_settings = in_app_install = survey_list
