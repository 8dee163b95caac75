"""``fhirgen users``: console users (add, change a password or role, disable, unlock, list).

The password comes from ``FHIRGEN_PASSWORD`` (scripts) or a hidden, confirmed prompt; it is
never an argument, so it stays out of shell history and process lists.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from fhirgen.errors import FhirgenError

if TYPE_CHECKING:
    from fhirgen.store import Store

PASSWORD_ENV = "FHIRGEN_PASSWORD"  # noqa: S105 - the variable's name, not a password
# fhirgen.store.console_models.ROLES, spelled out: importing the store would slow every command.
ROLES = ("admin", "viewer")
T = TypeVar("T")


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


def _run(change: Callable[[Store], T]) -> T:
    """``change`` on the store; a refusal (no such user, a bad password…) is one line on stderr
    and exit status 1."""
    store = _store()
    try:
        return change(store)
    except FhirgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
def add(name: str, role: str) -> None:
    """Add a user (password from FHIRGEN_PASSWORD, else prompted)."""
    from fhirgen.service.users import add_user

    user = _run(lambda store: add_user(store, name, role, _password()))
    click.echo(f"added {user.role} {user.username}")


@users.command("passwd")
@click.argument("name")
def passwd(name: str) -> None:
    """Set a user's password (their open sessions end; any client's lockout is lifted)."""
    from fhirgen.service.users import set_password

    user = _run(lambda store: set_password(store, name, _password()))
    click.echo(f"password changed for {user.username}")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def role(name: str, role: str) -> None:
    """Give a user another role (their open sessions end)."""
    from fhirgen.service.users import set_role

    user = _run(lambda store: set_role(store, name, role))
    click.echo(f"{user.username} is now {user.role}")


@users.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Refuse a user's sign-ins, single sign-on too (their open sessions end)."""
    from fhirgen.service.users import disable_user

    click.echo(f"disabled {_run(lambda store: disable_user(store, name)).username}")


@users.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Let a disabled user sign in again."""
    from fhirgen.service.users import enable_user

    click.echo(f"enabled {_run(lambda store: enable_user(store, name)).username}")


@users.command("signout")
@click.argument("name")
def signout(name: str) -> None:
    """End every open session of a user."""
    from fhirgen.service.users import end_sessions

    click.echo(f"ended every session of {_run(lambda store: end_sessions(store, name)).username}")


@users.command("unlock")
@click.argument("name")
def unlock(name: str) -> None:
    """Let every client that gave too many wrong passwords for a user try again."""
    from fhirgen.service.users import unlock as unlock_user

    cleared = _run(lambda store: unlock_user(store, name))
    click.echo(f"unlocked {name.strip().lower()} ({cleared} client(s) cleared)")


@users.command("list")
def list_() -> None:
    """List the users, their roles and last sign-in."""
    from fhirgen.service.users import list_users

    for user in list_users(_store()):
        last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
        state = "\tdisabled" if user.disabled else ""
        click.echo(f"{user.username}\t{user.role}\tlast sign-in {last}{state}")
