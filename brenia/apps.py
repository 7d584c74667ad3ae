from django.apps import AppConfig


class BreniaConfig(AppConfig):
    name = "brenia"
    verbose_name = "Brenia"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from brenia import background

        background.register_builtin_recoveries()
