from django.shortcuts import render

from nps_platform.access import member_required


@member_required("queue")
def queue(request):
    return render(request, "followups/queue.html")


@member_required("settings")
def playbook_settings(request):
    return render(request, "followups/queue.html")
