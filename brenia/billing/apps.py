from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "brenia.billing"
    label = "billing"
    verbose_name = "Plans and billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the admission hook (limits and the cost hold) and the job-finished
        # hook (settlement) with the job engine, which never imports billing.
        from brenia.billing import services  # noqa: F401
