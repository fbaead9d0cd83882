"""``helixserve models ...``: list, show, push, pull, promote, delete and import model bundles.

Contract: every command works on the store named by ``--store`` or ``HELIXSERVE_STORE`` (a
folder, ``file://`` or ``s3://bucket/prefix``; S3 settings from ``HELIXSERVE_S3_*`` or the usual
``AWS_*`` variables). Output is rich tables on a terminal; errors are ``Error: ...`` with exit 1
(raised as :class:`~helixserve.errors.HelixError` and printed by :func:`helixserve.cli.app.main`).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Column, Table
from rich.text import Text

from helixserve.cli.options import ModelArgument, StoreOption, examples
from helixserve.errors import HelixError
from helixserve.explain.precision import agreement_line, compare_ism
from helixserve.inputs.readers import read_sequences
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema, read_rows
from helixserve.runtime.importer import import_onnx
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.quantize import TestSet, int8_version
from helixserve.runtime.samples import sample_inputs
from helixserve.runtime.selftest import check_selftest, run_selftest
from helixserve.settings import load_settings
from helixserve.store import Manifest, ModelStore, headline_of, parse_ref
from helixserve.store.configured import store_from_settings
from helixserve.store.names import check_alias
from helixserve.workspace import audit
from helixserve.workspace.db import Database
from helixserve.workspace.members import LOCAL

models_app = typer.Typer(
    help="Manage the models in a store: list, show, test, import, copy, promote, quantize, delete.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)
LIST_COLUMNS = ("model", "versions", "aliases", "task", "headline", "from")


def open_store(uri: str | None, *, pretrained: bool = True) -> ModelStore:
    """The store at ``uri`` (default: the configured one), with the configured S3 options, over
    the pretrained models unless ``pretrained`` is false (the far end of a push or pull)."""
    return store_from_settings(load_settings(), uri, pretrained=pretrained)


def audited(action: str, model: str, version: int, **details: object) -> None:
    """Record a change to the store in the workspace's audit log, when there is a workspace
    database (a SQLite file already made, or a configured server), as ``local`` with the OS
    user's name. The change is made already: a database that fails is a warning, not an error."""
    db = Database(load_settings().database_url)
    try:
        if db.exists():
            db.upgrade()
            with db.session() as session:
                who = {"os_user": getpass.getuser(), **details}
                audit.record_model(session, LOCAL, action, model, version, **who)
    except HelixError as err:
        said = f"Warning: {model}@{version} changed, but the audit log did not record it: {err}"
        err_console.print(said, highlight=False)
    finally:
        db.close()


def describe_input(manifest: Manifest) -> str:
    """The input schema in words, e.g. ``dna: exactly 50 nt of A, C, G, T (one-hot)``."""
    schema = manifest.input
    if isinstance(schema, SequenceSchema):
        flanks = len(schema.flank_left) + len(schema.flank_right)
        extra = f", {flanks} flank positions" if flanks else ""
        return f"dna: {schema.length_rule()} of {schema.letters()} ({schema.encoding}{extra})"
    if isinstance(schema, TabularSchema):
        return f"tabular: {len(schema.features)} features: " + ", ".join(
            f"{f.name} ({f.rule()})" for f in schema.features
        )
    return f"image: {schema.width} x {schema.height}, {schema.channels} channel(s)"


def describe_lineage(manifest: Manifest) -> str:
    """``quantize of yeast-utr@1 (r2_delta -0.0001)`` and the like."""
    lineage = manifest.lineage
    if lineage is None:
        return ""
    words = lineage.how + (f" of {lineage.parent}" if lineage.parent else "")
    words += f" from {lineage.source}" if lineage.source else ""
    details = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in sorted(lineage.details.items())
    )
    return words + (f" ({details})" if details else "")


def headline_cell(manifest: Manifest) -> str:
    """The headline figure as every edge shows it, with the out-of-distribution one if any."""
    figure = headline_of(manifest)
    return figure.text + (f"\n{figure.ood_text}" if figure.ood_text else "")


@models_app.command(
    "list",
    epilog=examples(
        ("The models in the configured store", "models list"),
        ("The models in a team store on S3", "models list --store s3://lab-models"),
    ),
)
def list_models(store: StoreOption = None) -> None:
    """List the models in the store, with versions, aliases and a headline metric."""
    models = open_store(store)
    names = models.list_models()
    if not names:
        console.print(f"The store {models.uri} has no models yet.", highlight=False)
        return
    table = Table(
        *(Column(h, no_wrap=h != "headline") for h in LIST_COLUMNS),
        title=models.uri,
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for name in names:
        versions = ", ".join(str(v) for v in models.versions(name))
        try:
            manifest = models.manifest(name)
            aliases = ", ".join(f"{a}→{v}" for a, v in sorted(models.aliases(name).items()))
        except HelixError as err:  # one damaged model must not hide the others
            table.add_row(
                Text(name),
                versions,
                Text(f"error: {err}", style="red"),
                "",
                "",
                _origin(models, name),
            )
            continue
        table.add_row(
            Text(name),
            versions,
            Text(aliases),
            manifest.task,
            headline_cell(manifest),
            _origin(models, name),
        )
    console.print(table)
    for line in _meanings(models, names):
        console.print(Text(line), highlight=False)


def _origin(models: ModelStore, name: str) -> str:
    """``yours``, ``zoo`` (shipped with helixserve) or ``yours+zoo`` for a name's versions."""
    held = {models.origin(name, version) == models.uri for version in models.versions(name)}
    return "yours+zoo" if len(held) == 2 else "yours" if held == {True} else "zoo"


def _meanings(models: ModelStore, names: list[str]) -> list[str]:
    """One line per model: what its headline (and out-of-distribution) figure measures."""
    lines = []
    for name in names:
        if not _readable(models, name):
            continue
        figure = headline_of(models.manifest(name))
        lines.append(f"{name}: {figure.metric} = {figure.meaning}")
        if figure.ood_metric:
            lines.append(f"{name}: {figure.ood_metric} = {figure.ood_meaning}")
    return lines


def _readable(models: ModelStore, name: str) -> bool:
    try:
        models.manifest(name)
    except HelixError:
        return False
    return True


@models_app.command(
    "show",
    epilog=examples(
        ("The version the production alias points to", "models show my-binder@production"),
        ("A given version", "models show my-binder@2"),
    ),
)
def show(
    ref: ModelArgument,
    store: StoreOption = None,
) -> None:
    """Show a model version's manifest: schema, labels, metrics, files and card."""
    models = open_store(store)
    manifest = models.manifest(ref)
    table = Table(show_header=False, title=f"{manifest.name}@{manifest.version}")
    table.add_row("task", manifest.task)
    table.add_row("input", Text(describe_input(manifest)))
    table.add_row("output", Text(manifest.output.model_dump_json(exclude_defaults=True)))
    figure = headline_of(manifest)
    table.add_row("headline", Text(f"{figure.text}: {figure.meaning}"))
    if figure.ood_text:
        table.add_row("out of distribution", Text(f"{figure.ood_text}: {figure.ood_meaning}"))
    if manifest.lineage is not None:
        table.add_row("lineage", Text(describe_lineage(manifest)))
    held = models.origin(manifest.name, manifest.version) == models.uri
    table.add_row("from", "yours" if held else "zoo (shipped with helixserve, read-only)")
    for key, value in sorted(manifest.metrics.items()):
        table.add_row(f"metric {key}", f"{value:.6g}")
    table.add_row("created", manifest.created.isoformat(timespec="seconds"))
    table.add_row("versions", ", ".join(str(v) for v in models.versions(manifest.name)))
    aliases = models.aliases(manifest.name)
    table.add_row("aliases", Text(", ".join(f"{a}→{v}" for a, v in sorted(aliases.items()))))
    for path, digest in sorted(manifest.files.items()):
        table.add_row(f"file {path}", digest)
    console.print(table)
    bundle = models.pull(f"{manifest.name}@{manifest.version}")
    card = bundle.path / "card.md"
    if card.is_file():
        console.print(Markdown(card.read_text(encoding="utf-8", errors="replace")))


@models_app.command(
    "push",
    epilog=examples(
        ("Copy the latest version to a team store", "models push my-binder --to s3://lab-models"),
    ),
)
def push(
    ref: Annotated[
        str, typer.Argument(metavar="MODEL", help="The version to copy: NAME or NAME@VERSION.")
    ],
    to: Annotated[str, typer.Option("--to", metavar="URI", help="The store to copy it to.")],
    store: StoreOption = None,
) -> None:
    """Copy a model version from this store to another one (as its next version there)."""
    source, target = open_store(store), open_store(to, pretrained=False)
    copied = source.copy_to(target, ref)
    console.print(
        f"pushed {ref} to {target.uri} as {copied.name}@{copied.version}", highlight=False
    )
    audited("model.push", copied.name, copied.version, source=source.uri, store=target.uri)


@models_app.command(
    "pull",
    epilog=examples(
        ("Fetch and verify a version in the local cache", "models pull my-binder@2"),
        ("Copy a model here from a team store", "models pull my-binder --from s3://lab-models"),
    ),
)
def pull(
    ref: ModelArgument,
    source: Annotated[
        str | None,
        typer.Option("--from", metavar="URI", help="Copy from this store into the current one."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Fetch a version into the local cache (verified), or copy it here from another store."""
    here = open_store(store)
    if source is None:
        bundle = here.pull(ref)
        console.print(f"{bundle.label} verified in {bundle.path}", highlight=False)
        return
    copied = open_store(source, pretrained=False).copy_to(here, ref)
    console.print(f"pulled {ref} from {source} as {copied.name}@{copied.version}", highlight=False)


@models_app.command(
    "promote",
    epilog=examples(
        ("Serve version 2 as my-binder@production", "models promote my-binder@2"),
        ("Move another alias", "models promote my-binder@3 staging"),
    ),
)
def promote(
    ref: Annotated[
        str, typer.Argument(metavar="MODEL", help="The version to point at: NAME@VERSION.")
    ],
    alias: Annotated[
        str, typer.Argument(metavar="ALIAS", help="The alias to move, e.g. production.")
    ] = "production",
    store: StoreOption = None,
) -> None:
    """Point an alias (production, staging, ...) at a version, in one atomic write."""
    models = open_store(store)
    parsed = parse_ref(ref)
    version = models.resolve(parsed)
    models.set_alias(parsed.name, alias, version)
    console.print(f"{parsed.name}@{alias} → version {version}", highlight=False)
    audited("model.promote", parsed.name, version, alias=alias, store=models.uri)


@models_app.command(
    "delete",
    epilog=examples(
        ("Delete version 1", "models delete my-binder@1"),
        ("Also when an alias points to it", "models delete my-binder@1 --force"),
    ),
)
def delete(
    ref: Annotated[
        str, typer.Argument(metavar="MODEL", help="The version to delete: NAME@VERSION.")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Also remove aliases that point to it.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Delete one version (its number is never reused)."""
    parsed = parse_ref(ref)
    if parsed.version is None:
        raise HelixError(f"say which version to delete, e.g. {parsed.name}@3; got {ref!r}.")
    models = open_store(store)
    models.delete(parsed.name, parsed.version, force=force)
    console.print(f"deleted {parsed.name}@{parsed.version}", highlight=False)
    audited("model.delete", parsed.name, parsed.version, force=force, store=models.uri)


@models_app.command(
    "import",
    epilog=examples(
        (
            "Publish your own ONNX model and serve it as production",
            "models import model.onnx --schema schema.yaml --name my-binder --alias production",
        ),
    ),
)
def import_model(
    model: Annotated[Path, typer.Argument(metavar="ONNX_FILE", help="The ONNX model file.")],
    schema: Annotated[
        Path,
        typer.Option(metavar="FILE", help="YAML file: task, input, output (see docs/store.md)."),
    ],
    name: Annotated[str, typer.Option(metavar="NAME", help="The model's name in the store.")],
    alias: Annotated[
        str | None, typer.Option(metavar="ALIAS", help="Also point this alias at it.")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Make a bundle from your own ONNX model and a schema file, check it, and publish it."""
    if alias is not None:
        check_alias(alias)  # before publishing anything
    models = open_store(store)
    manifest = import_onnx(models, model, schema, name)
    if alias is not None:
        models.set_alias(manifest.name, alias, manifest.version)
    console.print(f"imported {model} as {manifest.name}@{manifest.version}", highlight=False)


@models_app.command(
    "quantize",
    epilog=examples(
        ("An int8 version calibrated on random valid inputs", "models quantize primer-binding"),
        ("Calibrated on real sequences", "models quantize yeast-utr --calibration utrs.csv"),
        (
            "Measure both models on labelled rows",
            "models quantize primer-binding --test-file test.csv --target label",
        ),
    ),
)
def quantize(
    ref: ModelArgument,
    calibration: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Inputs to calibrate on (a sequence or table file; default: random valid inputs).",
        ),
    ] = None,
    samples: Annotated[int, typer.Option(metavar="N", help="Calibration inputs to use.")] = 512,
    test_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Labelled sequences (CSV/TSV/Parquet) to measure both models on.",
        ),
    ] = None,
    target: Annotated[
        str, typer.Option(metavar="COLUMN", help="The label column of --test-file.")
    ] = "label",
    store: StoreOption = None,
) -> None:
    """Publish an int8 (static QDQ) version of a model, calibrated and checked against it.

    With --test-file, both the original and the int8 model are measured on it (R2 or accuracy),
    and the int8 version's card, manifest and headline carry both figures.
    """
    models = open_store(store)
    predictor = Predictor.from_store(models, ref)
    inputs = (
        _file_inputs(predictor, calibration, samples)
        if calibration
        else sample_inputs(predictor, samples)
    )
    test = _test_set(test_file, target) if test_file is not None else None
    _, files = models.read_files(predictor.label)
    manifest, files, check, tested = int8_version(predictor, files, inputs, test, compare_ism)
    published = models.publish(manifest, files)
    label = f"{published.name}@{published.version}"
    check_selftest(Predictor.from_store(models, label))  # loads, checks, re-runs the examples
    agreement = (
        ""
        if check.label_agreement is None
        else (f"; the label is unchanged for {check.label_agreement:.2%} of them")
    )
    console.print(
        f"published {label} (int8 of {predictor.label}): max |int8 - fp32| "
        f"{check.max_abs_diff:.4g} on {check.items} inputs{agreement}",
        highlight=False,
    )
    if tested is not None:
        console.print(
            f"on {test_file} ({tested.rows} rows): {tested.metric} int8 "
            f"{tested.int8:.4f}, original {tested.original:.4f} (change "
            f"{tested.delta:+.4f})",
            highlight=False,
        )
    ism_line = agreement_line(manifest, predictor.label)
    if ism_line is not None:
        console.print(ism_line, highlight=False)


def _test_set(path: Path, target: str) -> TestSet:
    """Labelled sequences from a table: the sequence column and the ``target`` column."""
    inputs: list[object] = []
    targets: list[str] = []
    for record in read_sequences(path):
        if not isinstance(record, Record):
            continue  # the model refuses it anyway; counted by the rows measured
        if target not in record.fields:
            columns = ", ".join(sorted(record.fields)) or "(none besides the sequence)"
            raise HelixError(
                f"--test-file {path} has no column {target!r}; its other columns "
                f"are {columns}. Name the label column with --target."
            )
        inputs.append(record.sequence)
        targets.append(record.fields[target])
    if not inputs:
        raise HelixError(f"--test-file {path} holds no sequence rows.")
    return TestSet(path.name, inputs, targets)


@models_app.command(
    "test",
    epilog=examples(
        ("Every model's self-test", "models test"),
        ("One version", "models test yeast-utr@1"),
    ),
)
def test(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MODEL", help="NAME, NAME@VERSION or NAME@ALIAS; several, or none for all."
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Re-run each model's self-test: the example inputs stored at publish time must still give
    the stored outputs. Exit 1, with the differences, if any does not."""
    models = open_store(store)
    chosen = refs or models.list_models()
    failed = 0
    for ref in chosen:
        try:
            report = run_selftest(Predictor.from_store(models, ref))
        except HelixError as err:  # damaged, unloadable: a failed test, and go on with the rest
            console.print(Text(f"FAIL {ref}: {err}"), highlight=False)
            failed += 1
            continue
        failed += not report.passed
        word = "ok  " if report.passed else "FAIL"
        console.print(Text(f"{word} {report.summary()}"), highlight=False)
    if failed:
        raise HelixError(f"{failed} of {len(chosen)} model(s) failed the self-test.")


def _file_inputs(predictor: Predictor, path: Path, limit: int) -> list[object]:
    schema = predictor.manifest.input
    items: list[object] = []
    if isinstance(schema, TabularSchema):
        for row in read_rows(path, schema):
            if not isinstance(row, BadRecord):
                items.append(dict(zip(schema.names(), row.values, strict=True)))
            if len(items) >= limit:
                break
        return items
    for record in read_sequences(path):
        if isinstance(record, Record):
            items.append(record.sequence)
        if len(items) >= limit:
            break
    return items
