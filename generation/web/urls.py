from django.urls import path

from generation.web import views

urlpatterns = [
    path("jobs/<uuid:job_id>/", views.job_page, name="job_page"),
    path("playground/", views.playground, name="playground"),
    path("playground/<slug:slug>/", views.playground_model, name="playground_model"),
    path("images/<uuid:image_id>/thumbnail", views.image_thumbnail, name="image_thumbnail"),
]
