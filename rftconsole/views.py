"""Console-wide pages: the overview, the system panel and API keys. Views only parse and render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from rftconsole.forms import ApiKeyForm
from rftconsole.models import ApiKey
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.services import create_api_key, revoke_api_key
from rftconsole.system import system_status


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html")


@require_GET
def system_panel(request: HttpRequest) -> HttpResponse:
    return render(request, "console/_system_panel.html", {"status": system_status(timeout=1.0)})


@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        _, new_key = create_api_key(request.user, data["name"], data["scope"])
        form = ApiKeyForm()
    keys = owned(ApiKey, request.user)
    return render(request, "keys/list.html", {"form": form, "keys": keys, "new_key": new_key})


@require_POST
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = get_owned_or_404(ApiKey, request.user, pk=key_id)
    revoke_api_key(api_key)
    messages.success(request, f"Revoked “{api_key.name}”. Calls with it now get 401.")
    return redirect("keys:list")
