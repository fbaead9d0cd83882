"""``helixserve users ...``: the administrator's commands for accounts (issue 17).

Contract: the commands work on the configured workspace (:func:`helixserve.cli.workspace.opened`)
through :mod:`helixserve.workspace.accounts`; whoever can run them can open the workspace
database, so they act as the ``local`` administrator and each change is in the audit log.
Passwords are never command-line arguments (other users of the machine see those): they are asked
for twice without echo, or read from the first line of standard input with ``--password-stdin``
(scripts). ``add`` creates the first admin that a server listening beyond loopback needs
(docs/security.md). Errors are ``Error: ...`` with exit 1.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from helixserve.cli.options import examples
from helixserve.cli.workspace import console, opened, say, table, when
from helixserve.workspace import accounts, audit
from helixserve.workspace.members import LOCAL

users_app = typer.Typer(
    help="Accounts: add users, list, disable, enable, reset passwords.", no_args_is_help=True
)
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The user's name.")]
FromStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input's first line."),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return typed


@users_app.command(
    "add",
    epilog=examples(
        ("The first admin", "users add ana --admin"),
        ("From a script (the password on standard input)", "users add bo --password-stdin"),
    ),
)
def add(
    name: NameArgument,
    admin: Annotated[
        bool, typer.Option("--admin", help="May manage users; sees every project.")
    ] = False,
    password_stdin: FromStdin = False,
) -> None:
    """Add a user (a password of 10 characters or more is asked for)."""
    password = _password(password_stdin)
    with opened() as (_, session):
        accounts.add_user(session, name, password, admin=admin)
        audit.record(session, LOCAL, "user.add", target=f"user {name}", details={"admin": admin})
    say(f"added {'admin ' if admin else ''}user {name}")


@users_app.command("list", epilog=examples(("The users", "users list")))
def list_users() -> None:
    """List the users."""
    with opened() as (_, session):
        found = accounts.list_users(session)
    if not found:
        say("No users yet: the workspace has one local owner. helixserve users add NAME --admin")
        return
    listing = table("user", "admin", "state", "created", "password changed")
    for user in found:
        state = "disabled" if user.disabled else "active"
        admin = "yes" if user.admin else "-"
        listing.add_row(
            user.name, admin, state, when(user.created_at), when(user.password_changed_at)
        )
    console.print(listing)


def _set_disabled(name: str, disabled: bool) -> None:
    with opened() as (_, session):
        user = accounts.get_user(session, name)
        accounts.set_disabled(session, user, disabled)
        action = "user.disable" if disabled else "user.enable"
        audit.record(session, LOCAL, action, target=f"user {name}")


@users_app.command("disable", epilog=examples(("Disable bo", "users disable bo")))
def disable(name: NameArgument) -> None:
    """Disable a user: signed out everywhere, their keys stop working."""
    _set_disabled(name, True)
    say(f"disabled user {name}; their sessions are closed")


@users_app.command("enable", epilog=examples(("Enable bo again", "users enable bo")))
def enable(name: NameArgument) -> None:
    """Enable a disabled user."""
    _set_disabled(name, False)
    say(f"enabled user {name}")


@users_app.command("reset", epilog=examples(("A new password for bo", "users reset bo")))
def reset(name: NameArgument, password_stdin: FromStdin = False) -> None:
    """Set a new password for a user; they are signed out everywhere."""
    password = _password(password_stdin)
    with opened() as (_, session):
        accounts.set_password(session, accounts.get_user(session, name), password)
        audit.record(session, LOCAL, "user.reset", target=f"user {name}")
    say(f"set a new password for {name}; their sessions are closed")
