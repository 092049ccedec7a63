"""Single sign-on with any OpenID Connect issuer, through mozilla-django-oidc.

The issuer's endpoints come from its discovery document (`<ORWEB_OIDC_ISSUER>/.well-known/openid-configuration`,
cached for an hour in the shared cache), so an operator sets only the issuer, a client id and secret, and
the scopes. The IdP's redirect URI is `<site>/oidc/callback/`.

- A person is matched by e-mail (case-insensitive; an `email_verified: false` claim is refused) and created
  on their first sign-in, with no password. There is no cap on how many.
- With ORWEB_OIDC_GROUPS_CLAIM set, the IdP owns group membership: at every sign-in the person's Django
  groups become exactly the claim's names (created when new), so model policies and budgets attached to
  those groups follow the IdP. ORWEB_OIDC_STAFF_GROUP, if set, makes is_staff follow membership of it.
  Superusers are the local break-glass accounts: sign-in never changes their staff flag.
- ORWEB_SSO_ONLY hides the password form and refuses password sign-in (and ends password sessions) for
  everyone but superusers, who keep it at /login/password/ for when the IdP is down.

The library checks the ID token's signature, expiry and nonce; we add the issuer and audience checks it
leaves out (`verify_token`), and read the endpoints only when a sign-in needs them, so a password sign-in
never waits on the IdP.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import httpx
import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

logger = logging.getLogger("orweb.sso")

DISCOVERY_SECONDS = 3600
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
GROUP_NAME_MAX = 150
USERNAME_MAX = 150


class DiscoveryError(Exception):
    """The issuer's discovery document could not be read, or doesn't describe this issuer."""


def enabled() -> bool:
    return bool(settings.ORWEB_OIDC_ISSUER)


def issuer() -> str:
    return settings.ORWEB_OIDC_ISSUER.rstrip("/")


def discovery() -> dict[str, Any]:
    """The issuer's discovery document, fetched at most once an hour for all processes."""
    key = "orweb:sso:discovery:" + hashlib.sha256(issuer().encode()).hexdigest()[:32]
    found = cache.get(key)
    if found is not None:
        return found
    try:
        response = httpx.get(f"{issuer()}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        found = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DiscoveryError(f"discovery at {issuer()} failed: {exc}") from exc
    if not isinstance(found, dict) or str(found.get("issuer", "")).rstrip("/") != issuer():
        raise DiscoveryError(f"the discovery document at {issuer()} names another issuer")
    missing = [name for name in ENDPOINTS if not found.get(name)]
    if missing:
        raise DiscoveryError(f"the discovery document at {issuer()} lacks {', '.join(missing)}")
    cache.set(key, found, DISCOVERY_SECONDS)
    return found


def claimed_groups(claims: dict[str, Any]) -> list[str] | None:
    """The group names in the configured claim (None when groups aren't mapped from the IdP).

    A missing claim is no groups: IdPs leave it out for someone in none. A leading "/" (Keycloak's full
    group paths) is dropped."""
    claim = settings.ORWEB_OIDC_GROUPS_CLAIM
    if not claim:
        return None
    value = claims.get(claim) or []
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    names = {str(name).strip().lstrip("/")[:GROUP_NAME_MAX] for name in values}
    return sorted(name for name in names if name)


def _free_username(claims: dict[str, Any]) -> str:
    """A username from the configured claim (else the e-mail's local part), made unique with a suffix."""
    wanted = claims.get(settings.ORWEB_OIDC_USERNAME_CLAIM) or str(claims.get("email", "")).split("@")[0]
    base = re.sub(r"[^\w.@+-]", "-", str(wanted or claims.get("sub", "")))[: USERNAME_MAX - 8] or "user"
    users = get_user_model().objects
    username, n = base, 1
    while users.filter(username__iexact=username).exists():
        n += 1
        username = f"{base}-{n}"
    return username


class PasswordBackend(ModelBackend):
    """Django's password sign-in, kept for superusers only while ORWEB_SSO_ONLY is on."""

    def user_can_authenticate(self, user: Any) -> bool:
        allowed = super().user_can_authenticate(user)
        return allowed and (not settings.ORWEB_SSO_ONLY or bool(getattr(user, "is_superuser", False)))


class OIDCBackend(OIDCAuthenticationBackend):
    """Signs people in from the IdP's callback; creates them and syncs their groups and staff flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The library's __init__ reads every endpoint; ours are discovered, and only for a callback.
        self.UserModel = get_user_model()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if not enabled() or request is None or "nonce" not in kwargs:
            return None  # not the OIDC callback: a password sign-in, or SSO is off
        try:
            self.configure()
            return super().authenticate(request, **kwargs)
        except (DiscoveryError, httpx.HTTPError, requests.RequestException, SuspiciousOperation) as exc:
            logger.warning("single sign-on failed: %s", exc)
            return None

    def configure(self) -> None:
        """Set what the library's __init__ would have, with the endpoints from discovery."""
        found = discovery()
        self.OIDC_OP_TOKEN_ENDPOINT = found["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = found["userinfo_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = found["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    def get_user(self, user_id: Any) -> Any:
        # The library's get_user ignores is_active; Django's refuses a deactivated person's session.
        return ModelBackend.get_user(self, user_id)

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if str(payload.get("iss", "")).rstrip("/") != issuer() or settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token was issued by another issuer or for another client")
        return payload

    def retrieve_matching_jwk(self, token: str) -> Any:
        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        # JWS lets an issuer with a single signing key leave the key id out; with several, we can't choose.
        response = httpx.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        keys = response.json().get("keys", [])
        if len(keys) != 1:
            raise SuspiciousOperation("the ID token names no key and the issuer has several")
        return jwt.PyJWK(keys[0])

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims with the userinfo endpoint's on top (some IdPs put groups in only one)."""
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo describes another subject than the ID token")
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        # Some IdPs (Cognito) send email_verified as a string.
        return bool(claims.get("email")) and str(claims.get("email_verified", True)).lower() != "false"

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(email__iexact=claims["email"])

    def create_user(self, claims: dict[str, Any]) -> Any:
        with transaction.atomic():
            user = self.UserModel.objects.create_user(_free_username(claims), email=claims["email"])
            logger.info("single sign-on created %s for %s", user.username, claims.get("sub"))
            return self.update_user(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        """Names, groups and the staff flag as the IdP says now."""
        user.first_name = str(claims.get("given_name", user.first_name))[:150]
        user.last_name = str(claims.get("family_name", user.last_name))[:150]
        groups = claimed_groups(claims)
        with transaction.atomic():
            if groups is not None:
                user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
                if settings.ORWEB_OIDC_STAFF_GROUP and not user.is_superuser:
                    user.is_staff = settings.ORWEB_OIDC_STAFF_GROUP in groups
            user.save(update_fields=["first_name", "last_name", "is_staff"])
        return user


class SignInView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: sends the browser to the IdP (404 when single sign-on isn't configured)."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # the library's would read the endpoint before a request needs it

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except DiscoveryError as exc:
            logger.warning("single sign-on failed: %s", exc)
            return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL_FAILURE)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class LoginView(auth_views.LoginView):
    """The sign-in page: the SSO button when configured, the password form unless SSO is required.

    `break_glass` is /login/password/, which always shows the password form (superusers only, in SSO-only
    mode, see PasswordBackend)."""

    break_glass = False

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso"] = {
            "enabled": enabled(),
            "provider": settings.ORWEB_OIDC_PROVIDER_NAME,
            "failed": self.request.GET.get("sso") == "failed",
            "only": settings.ORWEB_SSO_ONLY,
        }
        context["password_form"] = self.break_glass or not (enabled() and settings.ORWEB_SSO_ONLY)
        return context
