"""``fhirgen users``: console users (add, change a password, list).

The password comes from ``FHIRGEN_PASSWORD`` (scripts) or a hidden, confirmed prompt; it is
never an argument, so it stays out of shell history and process lists.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from fhirgen.errors import FhirgenError

if TYPE_CHECKING:
    from fhirgen.store import Store

PASSWORD_ENV = "FHIRGEN_PASSWORD"  # noqa: S105 - the variable's name, not a password
# fhirgen.store.console_models.ROLES, spelled out: importing the store would slow every command.
ROLES = ("admin", "viewer")


@click.group()
def users() -> None:
    """Console users: viewers see, admins also act."""


def _store() -> Store:
    from fhirgen.config import load_settings
    from fhirgen.store import Store

    try:
        settings = load_settings()
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    store = Store.from_settings(settings)
    store.migrate()
    return store


def _password() -> str:
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
def add(name: str, role: str) -> None:
    """Add a user (password from FHIRGEN_PASSWORD, else prompted)."""
    from fhirgen.users import add_user

    store = _store()
    try:
        user = add_user(store, name, role, _password())
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"added {user.role} {user.username}")


@users.command("passwd")
@click.argument("name")
def passwd(name: str) -> None:
    """Set a user's password (their open sessions end; a lockout is lifted)."""
    from fhirgen.users import set_password

    store = _store()
    try:
        user = set_password(store, name, _password())
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"password changed for {user.username}")


@users.command("list")
def list_() -> None:
    """List the users, their roles and last sign-in."""
    from fhirgen.users import list_users

    for user in list_users(_store()):
        last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
        click.echo(f"{user.username}\t{user.role}\tlast sign-in {last}")
