from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "brenia.accounts"
    label = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from brenia.accounts import signals

        signals.connect()
