from django.shortcuts import render

from nps_platform.access import member_required


@member_required("dashboard")
def dashboard(request):
    return render(request, "insights/dashboard.html")
