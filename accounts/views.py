from django.shortcuts import render

from nps_platform.access import member_required


@member_required("accounts")
def list(request):
    return render(request, "accounts/list.html")
