from django.apps import AppConfig


class RftConsoleConfig(AppConfig):
    name = "rftconsole"
    verbose_name = "RFT Console"

    def ready(self) -> None:
        from rftconsole.security import audit  # noqa: F401 - connects the login signals
        from rftconsole.security.crypto import check_keys

        check_keys()  # a bad encryption key stops every process at start, not at first upload
