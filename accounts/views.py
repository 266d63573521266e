"""Account pages (stub: to be written)."""

from django.shortcuts import render

from nps_platform.access import member_required


@member_required("accounts")
def account_list(request):
    return render(request, "accounts/list.html")


account_detail = segment_list = segment_create = segment_preview = account_list
segment_edit = segment_delete = account_list
