from django.shortcuts import render

from nps_platform.access import member_required


@member_required("surveys")
def list(request):
    return render(request, "surveys/list.html")
