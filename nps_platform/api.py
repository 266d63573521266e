"""The platform's own API: who am I."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class MeOutputSerializer(serializers.Serializer):
    organization = serializers.DictField(child=serializers.CharField())
    api_key = serializers.DictField(child=serializers.CharField())


class MeApi(APIView):
    @extend_schema(
        summary="The organization this key belongs to",
        responses={200: MeOutputSerializer},
        tags=["platform"],
    )
    def get(self, request):
        organization = request.auth.organization
        return Response(
            {
                "organization": {
                    "slug": organization.slug,
                    "name": organization.name,
                    "timezone": organization.timezone,
                    "currency": organization.currency,
                },
                "api_key": {"name": request.auth.name, "prefix": request.auth.prefix},
            }
        )
