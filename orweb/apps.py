from django.apps import AppConfig


class OrwebConfig(AppConfig):
    name = "orweb"
    verbose_name = "orweb"
