"""Accounts, roles, users' keys and the audit log in the workspace layer (issue 17), on SQLite and
on a real PostgreSQL: password rules and argon2id hashes, one message for every failed sign-in,
sessions that expire and close, the access rule (404 outside a project, 403 below the role),
keys capped by scope and project, revoked and expired keys, and an audit log without secrets."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from helixserve.cli.app import app
from helixserve.cli.serve import OPEN_REFUSED, check_exposure
from helixserve.errors import (
    Conflict,
    Forbidden,
    InputError,
    InvalidName,
    NameTaken,
    ProjectNotFound,
)
from helixserve.serving.auth import new_key
from helixserve.settings import Settings
from helixserve.workspace import accounts, audit
from helixserve.workspace.db import Database
from helixserve.workspace.keys import create_key, key_principal, new_expiry, revoke_key
from helixserve.workspace.members import (
    LOCAL,
    Principal,
    members,
    require,
    role_in,
    share,
    unshare,
    visible_projects,
)
from helixserve.workspace.models import Role, User, utcnow
from helixserve.workspace.projects import create_project, get_project

PASSWORD = "correct horse battery"
runner = CliRunner()


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session() as opened:
        yield opened


def message(kind: type[Exception], call: Callable[[], object]) -> str:
    """What ``call`` raised (of ``kind``), as a person reads it."""
    with pytest.raises(kind) as raised:
        call()
    return str(raised.value)


def person(user: User) -> Principal:
    return Principal("user", user.name, user.id, admin=user.admin)


def test_users_need_a_good_name_and_password_and_are_hashed_with_argon2id(
    session: Session,
) -> None:
    with pytest.raises(InputError) as short:
        accounts.add_user(session, "ana", "short")
    assert str(short.value) == (
        "the password has 5 characters; use at least 10 (a few words are easier to remember "
        "than symbols)."
    )
    same = message(InputError, lambda: accounts.add_user(session, "anabelle12", "AnaBelle12"))
    assert same == "the password is the user name; choose another."
    bad = message(InvalidName, lambda: accounts.add_user(session, "../x", PASSWORD))
    assert bad.startswith("user name '../x' is not allowed: use 1-64 letters")
    ana = accounts.add_user(session, "ana", PASSWORD)
    assert ana.password_hash.startswith("$argon2id$") and PASSWORD not in ana.password_hash
    taken = message(NameTaken, lambda: accounts.add_user(session, "ana", PASSWORD))
    assert taken == "a user named 'ana' already exists; choose another name."
    assert accounts.has_users(session)


def test_every_failed_sign_in_says_the_same(session: Session) -> None:
    ana = accounts.add_user(session, "ana", PASSWORD)
    accounts.add_user(session, "bo", PASSWORD)
    accounts.set_disabled(session, accounts.get_user(session, "bo"), True)
    failures = [("nobody", PASSWORD), ("ana", PASSWORD + "!"), ("bo", PASSWORD), ("ana", "")]
    for name, password in failures:
        with pytest.raises(accounts.SignInFailed) as failed:
            accounts.authenticate(session, name, password)
        assert str(failed.value) == "wrong user name or password."
    assert accounts.authenticate(session, "ana", PASSWORD).id == ana.id


def test_sessions_expire_close_and_end_with_a_password_change(session: Session) -> None:
    ana = accounts.add_user(session, "ana", PASSWORD)
    token = accounts.open_session(session, ana)
    assert len(token) >= 43 and accounts.session_user(session, token) is ana
    assert accounts.session_user(session, token + "x") is None
    later = utcnow() + timedelta(seconds=accounts.SESSION_TTL_S + 1)
    assert accounts.session_user(session, token, now=later) is None
    assert accounts.session_user(session, token) is None  # the expired row is gone
    first, second = accounts.open_session(session, ana), accounts.open_session(session, ana)
    accounts.close_session(session, first)
    assert accounts.session_user(session, first) is None
    assert accounts.session_user(session, second) is ana
    with pytest.raises(accounts.SignInFailed) as wrong:
        accounts.change_password(session, ana, "not the old one", "a brand new password")
    assert str(wrong.value) == "the current password is not right; type the one you sign in with."
    accounts.change_password(session, ana, PASSWORD, "a brand new password")
    assert accounts.session_user(session, second) is None
    assert accounts.authenticate(session, "ana", "a brand new password") is ana
    third = accounts.open_session(session, ana)
    accounts.set_disabled(session, ana, True)
    assert accounts.session_user(session, third) is None


def test_roles_decide_and_outsiders_cannot_tell_a_project_exists(session: Session) -> None:
    owner, viewer, outsider = (accounts.add_user(session, n, PASSWORD) for n in ("o", "v", "x"))
    create_project(session, "lab")
    share(session, "lab", "o", Role.OWNER)
    share(session, "lab", "v", Role.VIEWER)
    lab = get_project(session, "lab")
    assert role_in(session, person(owner), lab) is Role.OWNER
    assert role_in(session, LOCAL, lab) is Role.OWNER
    assert require(session, person(viewer), "lab", Role.VIEWER) is lab
    with pytest.raises(Forbidden) as low:
        require(session, person(viewer), "lab", Role.EDITOR)
    assert str(low.value) == (
        "v is a viewer of project 'lab'; this needs editor (a project owner can change your role)."
    )
    for who, name in ((person(outsider), "lab"), (person(outsider), "nope")):
        with pytest.raises(ProjectNotFound) as hidden:
            require(session, who, name, Role.VIEWER)
        assert str(hidden.value) == f"no project named {name!r}."
    assert [p.name for p in visible_projects(session, person(outsider))] == []
    assert [(u.name, r) for u, r in members(session, "lab")] == [
        ("o", Role.OWNER),
        ("v", Role.VIEWER),
    ]


def test_a_project_keeps_an_owner(session: Session) -> None:
    accounts.add_user(session, "o", PASSWORD)
    accounts.add_user(session, "p", PASSWORD)
    create_project(session, "lab")
    share(session, "lab", "o", Role.OWNER)
    message = "o is the only owner of project 'lab'; make someone else an owner first."
    for change in (
        lambda: unshare(session, "lab", "o"),
        lambda: share(session, "lab", "o", Role.EDITOR),
    ):
        with pytest.raises(Conflict) as refused:
            change()
        assert str(refused.value) == message
    share(session, "lab", "p", Role.OWNER)
    unshare(session, "lab", "o")
    assert [u.name for u, _ in members(session, "lab")] == ["p"]


def test_keys_are_capped_by_scope_and_project_and_stop_when_revoked_or_expired(
    session: Session,
) -> None:
    ana = accounts.add_user(session, "ana", PASSWORD)
    for name in ("lab", "other"):
        create_project(session, name)
        share(session, name, "ana", Role.OWNER)
    key, row = create_key(session, ana, "predict", label="notebook", project="lab")
    assert key.startswith("hsu_") and row.digest == accounts.token_digest(key)
    assert key not in {row.digest, row.label, row.id}
    who = key_principal(session, key)
    assert who is not None and who.scope == "predict" and row.last_used_at is not None
    lab, other = get_project(session, "lab"), get_project(session, "other")
    assert (role_in(session, who, lab), role_in(session, who, other)) == (Role.VIEWER, None)
    assert message(InputError, lambda: create_key(session, ana, "root")) == (
        "scope 'root' is not one of predict, write, admin."
    )
    revoke_key(session, ana, row.id)
    assert key_principal(session, key) is None
    soon, _ = create_key(session, ana, "write", expires_at=new_expiry(1))
    assert key_principal(session, soon) is not None
    assert key_principal(session, soon, now=utcnow() + timedelta(days=2)) is None
    assert key_principal(session, "hsu_made-up") is None


def test_the_audit_log_refuses_secrets_and_exports(session: Session) -> None:
    create_project(session, "lab")
    lab = get_project(session, "lab")
    audit.record(session, LOCAL, "dataset.upload", project_id=lab.id, target="dataset utrs")
    audit.record(session, LOCAL, "user.add", target="user ana", details={"admin": True})
    secret = {"new_password": "x"}
    assert message(
        ValueError, lambda: audit.record(session, LOCAL, "user.reset", details=secret)
    ) == ("audit details must not hold secrets ('new_password')")
    assert message(ValueError, lambda: audit.record(session, LOCAL, "user.hack")) == (
        "unknown audit action 'user.hack'"
    )
    session.flush()
    assert [e.target for e in audit.events(session, lab.id)] == ["dataset utrs"]
    every = audit.events(session, None)
    assert [e.action for e in every] == ["user.add", "dataset.upload"]
    rows = list(csv.DictReader(io.StringIO(audit.as_csv(every))))
    assert [(r["actor"], r["action"], r["details"]) for r in rows] == [
        ("local", "user.add", '{"admin": true}'),
        ("local", "dataset.upload", "{}"),
    ]


def test_the_users_commands(database_url: str) -> None:
    """``helixserve users ...`` as an administrator types them: passwords from standard input,
    each change in the audit log, refusals as ``Error: ...`` with exit 1."""
    env = {"HELIXSERVE_DATABASE_URL": database_url, "COLUMNS": "200"}

    def cli(*args: str, password: str | None = None) -> Result:
        return runner.invoke(app, list(args), env=env, input=password)

    assert cli("users", "list").output.startswith("No users yet: the workspace has one local")
    added = cli("users", "add", "ana", "--admin", "--password-stdin", password=PASSWORD + "\n")
    assert (added.exit_code, added.output) == (0, "added admin user ana\n")
    short = cli("users", "add", "bo", "--password-stdin", password="short\n")
    assert (short.exit_code, str(short.exception)) == (
        1,
        "the password has 5 characters; use at least 10 (a few words are easier to remember "
        "than symbols).",
    )
    assert cli("users", "add", "bo", "--password-stdin", password=PASSWORD + "\n").exit_code == 0
    assert cli("users", "disable", "bo").output == "disabled user bo; their sessions are closed\n"
    assert re.search(r"ana\s+yes\s+active.*\n\s*bo\s+-\s+disabled", cli("users", "list").output)
    reset = cli("users", "reset", "ana", "--password-stdin", password="another good one\n")
    assert reset.output == "set a new password for ana; their sessions are closed\n"
    missing = cli("users", "enable", "cy")
    assert str(missing.exception) == "no user named 'cy'; helixserve users list shows them."
    database = Database(database_url)
    with database.session() as session:
        assert accounts.authenticate(session, "ana", "another good one").admin
        logged = [(e.action, e.target) for e in audit.events(session, None)]
    database.close()
    assert logged == [
        ("user.reset", "user ana"),
        ("user.disable", "user bo"),
        ("user.add", "user bo"),
        ("user.add", "user ana"),
    ]


def test_serve_refuses_an_open_server_beyond_loopback(database_url: str, tmp_path: Path) -> None:
    """No user and no key: ``serve --host 0.0.0.0`` exits 1 saying how to make the first admin;
    a user, a key or a loopback address lets it start."""
    refused = subprocess.run(
        [sys.executable, "-m", "helixserve", "serve", "--host", "0.0.0.0", "--no-worker"],
        env={**os.environ, "HELIXSERVE_DATABASE_URL": database_url, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (refused.returncode, refused.stderr) == (
        1,
        f"Error: {OPEN_REFUSED.format(host='0.0.0.0')}\n",
    )
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(Settings(host=host, database_url=database_url))
    check_exposure(
        Settings(host="0.0.0.0", database_url=database_url, api_keys=[new_key("admin")[1]])
    )
    database = Database(database_url)
    with database.session() as session:
        accounts.add_user(session, "ana", PASSWORD, admin=True)
    database.close()
    check_exposure(Settings(host="0.0.0.0", database_url=database_url))
