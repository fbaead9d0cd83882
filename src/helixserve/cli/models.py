"""``helixserve models ...``: list, show, push, pull, promote, delete and import model bundles.

Contract: every command works on the store named by ``--store`` or ``HELIXSERVE_STORE`` (a
folder, ``file://`` or ``s3://bucket/prefix``; S3 settings from ``HELIXSERVE_S3_*`` or the usual
``AWS_*`` variables). Output is rich tables on a terminal; errors are ``Error: ...`` with exit 1
(raised as :class:`~helixserve.errors.HelixError` and printed by :func:`helixserve.cli.app.main`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from helixserve.cli.options import ModelArgument, StoreOption, examples
from helixserve.errors import HelixError
from helixserve.inputs.readers import read_sequences
from helixserve.inputs.records import BadRecord, Record
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema, read_rows
from helixserve.runtime.importer import import_onnx
from helixserve.runtime.predictor import Predictor
from helixserve.settings import load_settings
from helixserve.store import Manifest, ModelStore, make_manifest, parse_ref
from helixserve.store.configured import store_from_settings
from helixserve.store.names import check_alias

models_app = typer.Typer(
    help="Manage the models in a store: list, show, import, copy, promote, quantize, delete.",
    no_args_is_help=True,
)
console = Console()


def open_store(uri: str | None) -> ModelStore:
    """The store at ``uri`` (default: the configured one), with the configured S3 options."""
    return store_from_settings(load_settings(), uri)


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


def _headline(manifest: Manifest) -> str:
    if not manifest.metrics:
        return ""
    name, value = next(iter(sorted(manifest.metrics.items())))
    return f"{name} {value:.4g}"


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
    table = Table("model", "versions", "aliases", "task", "input", "metric", title=models.uri)
    for name in names:
        versions = ", ".join(str(v) for v in models.versions(name))
        try:
            manifest = models.manifest(name)
            aliases = ", ".join(f"{a}→{v}" for a, v in sorted(models.aliases(name).items()))
        except HelixError as err:  # one damaged model must not hide the others
            table.add_row(Text(name), versions, Text(f"error: {err}", style="red"), "", "", "")
            continue
        table.add_row(
            Text(name),
            versions,
            Text(aliases),
            manifest.task,
            manifest.input.kind,
            _headline(manifest),
        )
    console.print(table)


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
    source, target = open_store(store), open_store(to)
    copied = source.copy_to(target, ref)
    console.print(
        f"pushed {ref} to {target.uri} as {copied.name}@{copied.version}", highlight=False
    )


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
    copied = open_store(source).copy_to(here, ref)
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
    open_store(store).delete(parsed.name, parsed.version, force=force)
    console.print(f"deleted {parsed.name}@{parsed.version}", highlight=False)


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
    store: StoreOption = None,
) -> None:
    """Publish an int8 (static QDQ) version of a model, calibrated and checked against it."""
    from helixserve.cli.bench import sample_inputs  # noqa: PLC0415 - avoids an import cycle
    from helixserve.runtime.quantize import quantize_bundle  # noqa: PLC0415 - needs onnx

    models = open_store(store)
    predictor = Predictor.from_store(models, ref)
    inputs = (
        _file_inputs(predictor, calibration, samples)
        if calibration
        else sample_inputs(predictor, samples)
    )
    data, check = quantize_bundle(predictor, inputs)
    manifest, files = models.read_files(predictor.label)
    agreement = (
        ""
        if check.label_agreement is None
        else (f"; the label is unchanged for {check.label_agreement:.2%} of them")
    )
    note = (
        f"\n\n## int8 quantisation\n\nStatic QDQ int8 version of {predictor.label} (ONNX "
        f"Runtime; uint8 activations, int8 per-channel weights), calibrated on "
        f"{check.items} inputs. On those inputs the largest absolute difference from the "
        f"original's output is {check.max_abs_diff:.4g}{agreement}. The test metrics above "
        "are the original's; measure this version before promoting it.\n"
    )
    files = {**files, "model.onnx": data, "card.md": files["card.md"] + note.encode()}
    metrics = {"int8_max_abs_diff_vs_fp32": check.max_abs_diff}
    if check.label_agreement is not None:
        metrics["int8_label_agreement_vs_fp32"] = check.label_agreement
    fields = manifest.model_dump(exclude={"version", "files", "created", "metrics"})
    fields["description"] = (manifest.description + " (int8)").strip()
    published = models.publish(make_manifest(files, **fields, metrics=metrics), files)
    Predictor.from_store(models, f"{published.name}@{published.version}")  # loads and checks
    console.print(
        f"published {published.name}@{published.version} (int8 of {predictor.label}): "
        f"max |int8 - fp32| {check.max_abs_diff:.4g} on {check.items} inputs"
        f"{agreement}",
        highlight=False,
    )


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
