from django.urls import path

from brenia.accounts import web

urlpatterns = [
    path("account/keys/", web.api_keys, name="api_keys"),
    path("account/keys/<int:key_id>/revoke", web.api_key_revoke, name="api_key_revoke"),
]
