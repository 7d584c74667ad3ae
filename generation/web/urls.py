from django.urls import path

from generation.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/<uuid:job_id>/", views.job_page, name="job_page"),
]
