from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "nps_platform"
    verbose_name = "Platform"
