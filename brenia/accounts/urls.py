from django.urls import path

from brenia.accounts import web

urlpatterns = [
    path("account/keys/", web.api_keys, name="api_keys"),
    path("account/keys/<int:key_id>/revoke", web.api_key_revoke, name="api_key_revoke"),
    path("account/teams/", web.teams, name="teams"),
    path("account/teams/<int:team_id>/members", web.team_member_add, name="team_member_add"),
    path("account/teams/<int:team_id>/members/remove", web.team_member_remove,
         name="team_member_remove"),
]
