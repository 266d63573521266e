"""Response pages (stub: to be written)."""

from django.shortcuts import render

from nps_platform.access import member_required


@member_required("responses")
def explorer(request):
    return render(request, "responses/explorer.html")


explorer_export = response_detail = theme_list = theme_delete = explorer
