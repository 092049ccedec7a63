"""ASGI entry point: HTTP through Django (the page middleware keeps off /v1: orweb.middleware), websockets
through Channels with session auth."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from billing import attempts  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from orweb import metrics  # noqa: E402
from orweb.websocket_origin import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": metrics.instrument(django_asgi_app),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# The journal of this process's upstream attempts, and its thread, from the start: that thread also settles
# what earlier processes left unsettled (a crash, a kill) within seconds of this one starting.
attempts.journal()

# Everything loaded so far (Django, the apps, the servers' modules) lives as long as the process: keep it
# out of the collector's full passes. Without this each full pass walked it all and stopped the event
# loop for 50-100 ms, a stall every stream in the process felt at once; measured with it: 20-40 ms.
gc.freeze()
