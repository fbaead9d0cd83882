"""Two people working at once (issue 17), on SQLite and on a real PostgreSQL: every write of
both lands (no lost update, no 5xx), and neither ever sees the other's own project, while both
write into a shared one."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from helixserve.workspace import accounts
from helixserve.workspace.keys import create_key
from helixserve.workspace.members import share
from helixserve.workspace.models import Role
from helixserve.workspace.projects import create_project
from tests.support.server import Running, running
from tests.support.worker_runs import open_space

PASSWORD = "correct horse battery"
EACH = 12  # datasets each person makes in each of their two projects


@pytest.fixture
def two(tmp_path: Path, database_url: str) -> Iterator[tuple[Running, dict[str, str]]]:
    space = open_space(tmp_path, database_url)
    keys = {}
    with space.db.session() as session:
        for name in ("shared", "pa", "pb"):
            create_project(session, name)
        for person, own in (("a", "pa"), ("b", "pb")):
            user = accounts.add_user(session, person, PASSWORD)
            share(session, "shared", person, Role.OWNER)
            share(session, own, person, Role.OWNER)
            keys[person] = create_key(session, user, "admin")[0]
    space.db.close()
    with running(tmp_path / "store", tmp_path, database_url=database_url) as live:
        yield live, keys


def work(live: Running, key: str, person: str, other: str) -> list[str]:
    """Make datasets in the shared project and one's own, peeking at the other's between; what
    went wrong (nothing, when all is well)."""
    wrong = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=live.url + "/api/v1", headers=headers, timeout=60) as c:
        for i in range(EACH):
            for project in ("shared", f"p{person}"):
                made = c.post(f"/projects/{project}/datasets", json={"name": f"{person}{i}"})
                if made.status_code != 201:
                    wrong.append(f"{project}/{person}{i}: {made.status_code} {made.text}")
            peek = c.get(f"/projects/p{other}/datasets")
            if peek.status_code != 404:
                wrong.append(f"saw p{other}: {peek.status_code}")
            listed = {p["name"] for p in c.get("/projects").json()["projects"]}
            if listed != {"shared", f"p{person}"}:
                wrong.append(f"listed {sorted(listed)}")
    return wrong


def test_two_people_at_once_lose_nothing_and_see_only_their_own(
    two: tuple[Running, dict[str, str]],
) -> None:
    live, keys = two
    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(work, live, keys[p], p, o) for p, o in (("a", "b"), ("b", "a"))]
        assert [f.result() for f in done] == [[], []]
    headers = {"Authorization": f"Bearer {keys['a']}"}
    shared = httpx.get(f"{live.url}/api/v1/projects/shared/datasets", headers=headers).json()
    names = sorted(d["name"] for d in shared["datasets"])
    assert names == sorted(f"{p}{i}" for p in "ab" for i in range(EACH))
