"""CSV import pages (stub: to be written)."""

from django.http import HttpResponse


def import_list(request):
    return HttpResponse("todo")


import_detail = import_progress = import_errors = import_list
