"""The admins' API token page: list tokens, create one (its secret shown once), revoke one.

The secret appears only in the response to the POST that created it, which is never cached;
only its sha256 is stored, so reloading the list (or any later request) cannot show it again.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from .access import admin_required
from .audit import Actor
from .forms import ServiceTokenForm
from .models import ServiceToken
from .services.tokens import token_create, token_revoke


@require_http_methods(["GET", "POST"])
@admin_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = ServiceTokenForm(request.POST or None)
    created: ServiceToken | None = None
    secret = ""
    if request.method == "POST" and form.is_valid():
        try:
            created, secret = token_create(
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                user=form.cleaned_data["user"],
                actor=Actor.of(request.user),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            form = ServiceTokenForm()
    context = {
        "form": form,
        "tokens": ServiceToken.objects.select_related("user").order_by("revoked_at", "-created_at", "name"),
        "created": created,
        "secret": secret,
    }
    status = 400 if request.method == "POST" and created is None else 200
    response = render(request, "reviewapp/tokens.html", context, status=status)
    add_never_cache_headers(response)
    return response


@require_POST
@admin_required
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ServiceToken, pk=token_id)
    was_revoked = token.revoked_at is not None
    token_revoke(token_id=token.pk, actor=Actor.of(request.user))
    if was_revoked:
        messages.info(request, f"Token {token.name} was already revoked.")
    else:
        messages.success(request, f"Token {token.name} is revoked: requests bearing it are refused from now on.")
    return redirect("tokens")
