"""Page access: signed in, a member of the current organization, and a role for the area."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from nps_platform.roles import can


def member_required(area: str):
    """Lets the view run only for a member whose role may use `area` (see roles.AREAS).

    Anonymous visitors go to sign-in; a signed-in person without a seat sees the
    "no organization" page; a member whose role lacks the area gets 403.
    """
    can(None, area)  # an unknown area is a programming error, caught at import

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.membership is None:
                return redirect("no_organization")
            if not can(request.membership.role, area):
                raise PermissionDenied(f"Your role cannot open {area}.")
            return view(request, *args, **kwargs)

        wrapper.area = area
        return wrapper

    return decorator
