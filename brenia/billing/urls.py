from django.urls import path

from brenia.billing import web

urlpatterns = [
    path("usage/", web.usage_page, name="usage"),
    path("usage/export.csv", web.usage_export, name="usage_export"),
]
