"""``helixserve datasets ...``: datasets of a project, their versions, column roles and subsets.

Contract: the commands work on the configured workspace (:func:`helixserve.cli.workspace.opened`)
through :mod:`helixserve.workspace.datasets`, as ``/api/v1/projects/{project}/datasets`` does.
``upload`` streams the file into the workspace (constant memory, refused past
``HELIXSERVE_MAX_UPLOAD_BYTES``) and prints the version (its sha256), its row counts and its
columns with their detected roles. ``subset`` builds the spec from one of ``--where``
(``'t0>100'``, ``'part==T'``, ``'split in T,V'``), ``--fraction``, ``--rest``, ``--all`` or
``--spec`` (JSON); a value that reads as a number is one. Errors are ``Error: ...``, exit 1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from helixserve.cli.options import examples
from helixserve.cli.workspace import ProjectOption, console, opened, pairs, say, shown, table
from helixserve.errors import InputError, InvalidFile
from helixserve.workspace import datasets
from helixserve.workspace.models import DatasetVersion

datasets_app = typer.Typer(
    help="Datasets of a project: upload versions, correct column roles, define subsets.",
    no_args_is_help=True,
)
DatasetArgument = Annotated[str, typer.Argument(metavar="DATASET", help="The dataset's name.")]
VersionOption = Annotated[
    str,
    typer.Option(metavar="REF", help="The version: its sha256, first 8+ characters, or latest."),
]
WHERE = re.compile(
    r"^\s*(?P<column>[^<>=!\s]+)\s*(?P<op>==|!=|<=|>=|<|>|=|\sin\s)\s*(?P<v>.+?)\s*$"
)


@datasets_app.command(
    "create", epilog=examples(("A dataset in project yeast", "datasets create utrs -p yeast"))
)
def create(name: DatasetArgument, project: ProjectOption) -> None:
    """Create an empty dataset; upload versions of it with datasets upload."""
    with opened() as (_, session):
        datasets.create_dataset(session, project, name)
    say(f"created dataset {name} in project {project}")


def _version_line(version: DatasetVersion) -> str:
    return (
        f"version {version.id[:12]} ({version.filename}, {version.format}): {version.rows:,} "
        f"rows, {version.good_rows:,} good, {version.refused_rows:,} refused"
    )


def _cut(text: str, width: int = 20) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _columns(version: DatasetVersion) -> None:
    roles = version.profile.get("roles", {})
    shown_table = table("column", "role", "values", "missing", "distinct", "examples")
    for column in version.profile.get("columns", []):
        shown_table.add_row(
            column["name"],
            roles.get(column["name"], column["role"]),
            f"{column['values']:,}",
            f"{column['missing']:,}",
            f"{column['distinct']:,}" + ("+" if column["distinct_capped"] else ""),
            ", ".join(_cut(e) for e in column["examples"][:3]),
        )
    console.print(shown_table)


@datasets_app.command(
    "upload",
    epilog=examples(("The tutorial's table", "datasets upload utrs Native_UTRs.csv.gz -p yeast")),
)
def upload(
    name: DatasetArgument,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="CSV, TSV, FASTA or Parquet (.gz too), or a zip of images with a labels CSV.",
        ),
    ],
    project: ProjectOption,
) -> None:
    """Upload a file as a new version of a dataset (the same bytes give the same version)."""
    try:
        stream = file.open("rb")
    except OSError as err:
        raise InvalidFile(f"cannot read {file}: {err.strerror or err}.") from None
    with stream, opened() as (space, session):
        version = datasets.add_version(session, space, project, name, stream, file.name)
        say(_version_line(version))
        _columns(version)


@datasets_app.command(
    "list", epilog=examples(("The datasets of project yeast", "datasets list -p yeast"))
)
def list_datasets(project: ProjectOption) -> None:
    """List a project's datasets with their latest versions."""
    with opened() as (_, session):
        found = datasets.list_datasets(session, project)
        listing = table("dataset", "versions", "latest", "file", "rows", "refused")
        for dataset in found:
            known = datasets.versions(session, dataset)
            last = known[-1] if known else None
            listing.add_row(
                dataset.name,
                str(len(known)),
                last.id[:12] if last else "-",
                last.filename if last else "-",
                f"{last.good_rows:,}" if last else "-",
                f"{last.refused_rows:,}" if last else "-",
            )
    if not found:
        say(f"Project {project} has no datasets yet: helixserve datasets create NAME -p {project}")
        return
    console.print(listing)


@datasets_app.command(
    "show",
    epilog=examples(
        ("The latest version's columns and refused rows", "datasets show utrs -p yeast"),
        ("Another version, 50 refused rows", "datasets show utrs -p yeast --version 3f2a9c1e"),
    ),
)
def show(
    name: DatasetArgument,
    project: ProjectOption,
    version: VersionOption = "latest",
    refused: Annotated[int, typer.Option(metavar="N", help="Refused rows to show.")] = 10,
) -> None:
    """Show a version: row counts, columns with their roles, and the rows it refused."""
    with opened() as (_, session):
        found = datasets.get_version(session, project, name, version)
    say(f"{name} " + _version_line(found))
    _columns(found)
    rows = found.report.get("refused", [])[:refused]
    if rows:
        listing = table("row", "id", "line", "problem")
        for row in rows:
            listing.add_row(str(row["row"]), shown(row["id"]), shown(row["line"]), row["message"])
        console.print(listing)


@datasets_app.command(
    "roles",
    epilog=examples(("Mark a column as the rows' ids", "datasets roles utrs UTR_name=id -p yeast")),
)
def roles(
    name: DatasetArgument,
    changes: Annotated[
        list[str],
        typer.Argument(
            metavar="COLUMN=ROLE",
            help="Roles: sequence, number, category, split, id, image or text.",
        ),
    ],
    project: ProjectOption,
    version: VersionOption = "latest",
) -> None:
    """Correct the roles of some columns of a version (the others keep theirs)."""
    with opened() as (_, session):
        found = datasets.get_version(session, project, name, version)
        now = datasets.set_roles(found, pairs(changes, "COLUMN=ROLE"))
    listing = table("column", "role")
    for column, role in now.items():
        listing.add_row(column or "(no name)", role)
    console.print(listing)


def _value(text: str) -> Any:
    """A number when ``text`` reads as one, else the text."""
    for read in (int, float):
        try:
            return read(text)
        except ValueError:
            pass
    return text


def where_spec(text: str) -> dict[str, Any]:
    """``'t0>100'`` as a ``where`` subset spec; see the module contract."""
    found = WHERE.match(text)
    if found is None:
        raise InputError(
            f"--where must look like COLUMN OP VALUE ('t0>100', 'part==T', 'split in T,V'), "
            f"got {text!r}.",
            field="--where",
        )
    op = "==" if found["op"] == "=" else found["op"].strip()
    value = found["v"].strip("'\"")
    if op == "in":
        return {
            "kind": "where",
            "column": found["column"],
            "op": op,
            "value": [_value(v.strip()) for v in value.split(",")],
        }
    return {"kind": "where", "column": found["column"], "op": op, "value": _value(value)}


def subset_spec(options: dict[str, Any]) -> dict[str, Any]:
    """The spec the ``subset`` options name (exactly one kind)."""
    kinds = [k for k in ("where", "fraction", "rest", "all", "spec") if options[k]]
    if len(kinds) != 1:
        raise InputError(
            "give one of --where, --fraction, --rest, --all or --spec"
            + (f" (got {', '.join('--' + k for k in kinds)})." if kinds else "."),
            field="subset",
        )
    kind = kinds[0]
    if kind == "where":
        return where_spec(options["where"])
    if kind == "fraction":
        spec = {"kind": "fraction", "of": options["of"], "fraction": options["fraction"]}
        return spec | {"seed": options["seed"], "group": options["group"]}
    if kind == "rest":
        return {"kind": "rest", "of": options["of"], "minus": options["minus"] or []}
    if kind == "all":
        return {"kind": "all"}
    try:
        parsed: dict[str, Any] = json.loads(options["spec"])
    except json.JSONDecodeError as err:
        raise InputError(f"--spec is not JSON ({err}).", field="--spec") from None
    return parsed


@datasets_app.command(
    "subset",
    epilog=examples(
        ("Rows whose t0 is over 100", "datasets subset utrs measured --where 't0>100' -p yeast"),
        (
            "80% of them, at random",
            "datasets subset utrs train --fraction 0.8 --of measured --seed 0 -p yeast",
        ),
        (
            "The rest of them",
            "datasets subset utrs val --rest --of measured --minus train -p yeast",
        ),
    ),
)
def subset(
    name: DatasetArgument,
    subset_name: Annotated[str, typer.Argument(metavar="SUBSET", help="The subset's name.")],
    project: ProjectOption,
    where: Annotated[
        str | None, typer.Option(metavar="EXPR", help="Rows where COLUMN OP VALUE holds.")
    ] = None,
    fraction: Annotated[
        float | None, typer.Option(metavar="F", help="A random share of the rows, 0 < F < 1.")
    ] = None,
    rest: Annotated[bool, typer.Option("--rest", help="The rows in no --minus subset.")] = False,
    everything: Annotated[bool, typer.Option("--all", help="Every good row.")] = False,
    spec: Annotated[str | None, typer.Option(metavar="JSON", help="The spec as JSON.")] = None,
    of: Annotated[
        str | None, typer.Option(metavar="SUBSET", help="Take from this subset (default: all).")
    ] = None,
    minus: Annotated[
        list[str] | None, typer.Option(metavar="SUBSET", help="Leave out this subset (--rest).")
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (--fraction).")] = 0,
    group: Annotated[
        str | None, typer.Option(metavar="COLUMN", help="Keep groups together (--fraction).")
    ] = None,
) -> None:
    """Define a subset of a dataset's rows and count them in the latest version."""
    options: dict[str, Any] = {"where": where, "fraction": fraction, "rest": rest}
    options["all"] = everything
    options |= {"spec": spec, "of": of, "minus": minus, "seed": seed, "group": group}
    with opened() as (space, session):
        made = datasets.add_subset(session, project, name, subset_name, subset_spec(options))
        dataset = datasets.get_dataset(session, project, name)
        known = datasets.versions(session, dataset)
        everyone = datasets.list_subsets(session, dataset)
    count = datasets.subset_counts(space, known[-1], everyone)[made.name] if known else None
    rows = f"{count:,} rows" if isinstance(count, int) else (count or "no version yet")
    say(f"subset {subset_name} of {name}: {rows}")


@datasets_app.command(
    "delete-subset",
    epilog=examples(
        ("Delete subset measured of utrs", "datasets delete-subset utrs measured -p yeast")
    ),
)
def delete_subset(
    name: DatasetArgument,
    subset_name: Annotated[str, typer.Argument(metavar="SUBSET", help="The subset's name.")],
    project: ProjectOption,
) -> None:
    """Delete a subset that no experiment or other subset reads (to define it again)."""
    with opened() as (_, session):
        datasets.delete_subset(session, project, name, subset_name)
    say(f"deleted subset {subset_name} of {name}")


@datasets_app.command(
    "subsets", epilog=examples(("The subsets of utrs", "datasets subsets utrs -p yeast"))
)
def subsets(
    name: DatasetArgument, project: ProjectOption, version: VersionOption = "latest"
) -> None:
    """List a dataset's subsets with the rows each selects in a version."""
    with opened() as (space, session):
        dataset = datasets.get_dataset(session, project, name)
        found = datasets.list_subsets(session, dataset)
        chosen = datasets.get_version(session, project, name, version) if found else None
    counts = datasets.subset_counts(space, chosen, found) if chosen is not None else {}
    listing = table("subset", "spec", "rows")
    for item in found:
        count = counts.get(item.name)
        spec = json.dumps({k: v for k, v in item.spec.items() if v is not None})
        listing.add_row(item.name, spec, f"{count:,}" if isinstance(count, int) else str(count))
    if not found:
        say(f"Dataset {name} has no subsets yet: helixserve datasets subset {name} NAME ...")
        return
    console.print(listing)
