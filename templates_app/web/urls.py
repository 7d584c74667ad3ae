from django.urls import path

from templates_app.web import brand_kits, files, history, pages, runs

urlpatterns = [
    path("", pages.home, name="home"),
    path("templates/", pages.gallery, name="template_gallery"),
    path("templates/<slug:slug>/", pages.template_form, name="template_form"),
    path("templates/<slug:slug>/quote", pages.template_quote, name="template_quote"),
    path("templates/<slug:slug>/preview", files.template_preview, name="template_preview"),
    path("runs/<uuid:run_id>/", runs.run_page, name="run_page"),
    path("runs/<uuid:run_id>/retry", runs.run_retry, name="run_retry"),
    path("runs/<uuid:run_id>/download.zip", runs.run_zip, name="run_zip"),
    path("images/", history.image_history, name="image_history"),
    path("brand-kits/", brand_kits.kit_list, name="brand_kit_list"),
    path("brand-kits/new", brand_kits.kit_create, name="brand_kit_create"),
    path("brand-kits/<int:kit_id>/", brand_kits.kit_edit, name="brand_kit_edit"),
    path("brand-kits/<int:kit_id>/delete", brand_kits.kit_delete, name="brand_kit_delete"),
    path("brand-kits/<int:kit_id>/logo", files.brand_kit_logo, name="brand_kit_logo"),
]
