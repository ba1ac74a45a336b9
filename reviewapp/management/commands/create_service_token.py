"""manage.py create_service_token: issue an API token and print its secret once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewapp.audit import SYSTEM
from reviewapp.models import ServiceToken
from reviewapp.services.tokens import token_create


class Command(BaseCommand):
    help = "Create a scoped API token. The secret is printed once and cannot be shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Unique token name, e.g. the calling service.")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            dest="scopes",
            help=f"Scope to grant; repeat for several. Known: {', '.join(ServiceToken.SCOPES)}.",
        )
        parser.add_argument("--user", help="Username the token acts for (default: no person).")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("--name must not be blank")
        if ServiceToken.objects.filter(name=name).exists():
            raise CommandError(f"a token named {name!r} already exists; choose another name or revoke it first")
        user = _user_or_fail(options["user"])
        try:
            token, secret = token_create(name=name, scopes=options["scopes"], actor=SYSTEM, user=user)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(f"created token {token.name} (prefix {token.prefix}) with scopes {', '.join(token.scopes)}")
        self.stdout.write("secret (shown once, store it now):")
        self.stdout.write(secret)


def _user_or_fail(username: str | None) -> User | None:
    if username is None:
        return None
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise CommandError(f"no user named {username!r}") from None
