"""``helixserve projects ...``: create, list, rename and archive workspace projects.

Contract: the commands work on the configured workspace (:func:`helixserve.cli.workspace.opened`)
through :mod:`helixserve.workspace.projects`, as ``/api/v1/projects`` does; a bad or taken name
is ``Error: ...`` with exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from helixserve.cli.options import examples
from helixserve.cli.workspace import console, opened, say, table, when
from helixserve.workspace import projects

projects_app = typer.Typer(
    help="Workspace projects: every dataset, experiment and run belongs to one.",
    no_args_is_help=True,
)
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The project's name.")]


@projects_app.command(
    "create",
    epilog=examples(
        ("A project for the yeast tutorial", "projects create yeast --title 'Yeast 5′ UTRs'"),
    ),
)
def create(
    name: NameArgument,
    title: Annotated[str, typer.Option(metavar="TITLE", help="A title for people.")] = "",
) -> None:
    """Create a project (1-64 letters, digits, '.', '_' or '-')."""
    with opened() as (_, session):
        projects.create_project(session, name, title)
    say(f"created project {name}")


@projects_app.command(
    "list",
    epilog=examples(
        ("The projects", "projects list"),
        ("Archived ones too", "projects list --all"),
    ),
)
def list_projects(
    everything: Annotated[bool, typer.Option("--all", help="Include archived projects.")] = False,
) -> None:
    """List the projects, with what each holds."""
    with opened() as (_, session):
        found = projects.list_projects(session, include_archived=everything)
        if not found:
            say("There are no projects yet: helixserve projects create NAME")
            return
        shown = table("project", "title", "datasets", "experiments", "runs", "created")
        for project in found:
            counts = projects.project_counts(session, project.name)
            name = project.name + (" (archived)" if project.archived else "")
            runs = ", ".join(f"{n} {state}" for state, n in sorted(counts["runs"].items()))
            shown.add_row(
                name,
                project.title,
                str(counts["datasets"]),
                str(counts["experiments"]),
                runs or "-",
                when(project.created_at),
            )
    console.print(shown)


@projects_app.command(
    "rename", epilog=examples(("Rename a project", "projects rename yeast yeast-utr"))
)
def rename(
    name: NameArgument,
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="Its new name.")],
) -> None:
    """Rename a project (its datasets, experiments and runs stay in it)."""
    with opened() as (_, session):
        projects.rename_project(session, name, new_name)
    say(f"renamed project {name} to {new_name}")


@projects_app.command(
    "archive",
    epilog=examples(
        ("Archive a project", "projects archive yeast"),
        ("Bring it back", "projects archive yeast --restore"),
    ),
)
def archive(
    name: NameArgument,
    restore: Annotated[bool, typer.Option("--restore", help="Restore it instead.")] = False,
) -> None:
    """Archive a project (kept, but left out of lists), or restore it."""
    with opened() as (_, session):
        projects.archive_project(session, name, archived=not restore)
    say(f"{'restored' if restore else 'archived'} project {name}")
