from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from orweb import sso, views
from orweb.login_throttle import ThrottledAdminLoginForm, ThrottledLoginForm

# Both sign-in pages count failures and refuse a locked username or address (orweb.login_throttle).
admin.site.login_form = ThrottledAdminLoginForm

# /account/: one namespace for the signed-in user's pages of two apps, API keys (gateway) and spend (billing).
account = [path("", include("gateway.urls")), path("", include("billing.urls"))]

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("login/", sso.LoginView.as_view(authentication_form=ThrottledLoginForm), name="login"),
    # Break glass: the password form even when single sign-on is required (superusers only, orweb.sso).
    path(
        "login/password/",
        sso.LoginView.as_view(authentication_form=ThrottledLoginForm, break_glass=True),
        name="login_password",
    ),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("chat/", include("chat.urls")),
    path("batches/", include("batches.urls")),
    path("v1/", include("batches.api_urls")),
    path("v1/", include("gateway.api_urls")),
    path("account/", include((account, "account"))),
    path("models/", include("catalog.urls")),
    path("console/", include("console.urls")),
]
