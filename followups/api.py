"""Follow-ups REST API (stub: to be written)."""

from rest_framework.views import APIView


class _Stub(APIView):
    pass


FollowUpListApi = FollowUpDetailApi = _Stub
