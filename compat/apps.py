from django.apps import AppConfig


class CompatConfig(AppConfig):
    """The Delighted-compatible REST surface (/delighted/v1/) and its guide page."""

    name = "compat"
    verbose_name = "Delighted compatibility"

    def ready(self):
        from nps_platform.settings_tabs import register_settings_tab

        register_settings_tab("delighted", "Moving from Delighted", "compat_settings:guide")
