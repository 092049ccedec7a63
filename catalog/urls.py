from django.urls import path

from catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.model_list, name="list"),
    # Model ids hold slashes and colons ("openai/gpt-4o", "x/y:free").
    path("<path:model_id>/", views.model_detail, name="detail"),
]
