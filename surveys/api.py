"""Surveys REST API (stub: to be written)."""

from rest_framework.views import APIView


class _Stub(APIView):
    pass


EventApi = InvitationListApi = _Stub
