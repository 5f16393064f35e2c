from django.apps import AppConfig


class RftConsoleConfig(AppConfig):
    name = "rftconsole"
    verbose_name = "RFT Console"
