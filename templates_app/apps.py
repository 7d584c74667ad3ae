from django.apps import AppConfig


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Business templates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the run tasks, their recovery step and the job-finished hook.
        from templates_app import runs  # noqa: F401
