"""The web UI: server-rendered pages on the serving app, for people who do not write code.

Contract:
- Pages: ``/`` (catalogue), ``/models/{name}`` (card, metrics — per-label figures such as
  ``auroc:<label>`` as one table row per label, :func:`metric_groups` — curves, confusion matrix
  or scatter, versions), ``/models/{name}/predict`` (one input — a DNA text box, a form generated
  from a tabular schema, or an image upload — and a file upload), ``/jobs/{id}`` (a scored file:
  counts, paged results, per-row report, CSV downloads), ``/compare?m=a&m=b@2`` (models side by
  side, see :mod:`helixserve.serving.ui_compare`), and the seed's ``/dnasequence`` and
  ``/dnafile`` (redirects to the default DNA model). The catalogue, the model page and the
  compare page show each version's headline from
  :func:`~helixserve.store.manifest.headline_of` (the figure, its meaning as a tooltip, and the
  out-of-distribution figure where one exists), as the API and ``models list`` do; the model page
  also shows its lineage chain (:mod:`helixserve.serving.lineage`).
- With API keys on, every page needs a key session (:mod:`helixserve.serving.sessions`): without
  one the key form of :mod:`helixserve.serving.ui_login` is shown instead (status 401).
- Every form works without JavaScript (plain POST, page re-rendered with the answer or with the
  error next to the field); ``/static/app.js`` adds live validation, upload progress and
  drag-and-drop. A multilabel prediction shows every label's probability as a bar with the
  threshold marked and whether the label is on; a scored file, one column per label.
  Under every DNA prediction: its explanation (:mod:`helixserve.serving.ui_ism`: an ISM logo and
  per-base strip, or block occlusion for a long sequence).
  The variant and design pages of DNA models are in :mod:`helixserve.serving.ui_explain`.
  Every asset is in the package: no CDN, no network.
- Predictions go through the same micro-batcher and validation as the API, so the messages are
  the API's. Scored files are kept by :mod:`helixserve.serving.jobs` (the last 16 uploads).
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from PIL import Image
from starlette.datastructures import UploadFile

from helixserve.error_table import TABLE, status_of
from helixserve.errors import HelixError, InputError, ModelNotFound
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.serving import charts, csrf
from helixserve.serving.files import Row
from helixserve.serving.lineage import Chain
from helixserve.serving.registry import LoadedModel
from helixserve.serving.server import Server
from helixserve.serving.sessions import COOKIE
from helixserve.store.manifest import Manifest, headline_of
from helixserve.store.names import parse_ref
from helixserve.workspace.members import Principal

HERE = Path(__file__).parent
PAGE = 50
INVALID = TABLE[InputError].status  # a form shown again with its field errors


@dataclass
class Job:
    id: str
    model: LoadedModel
    filename: str
    rows: list[Row]
    owner: str = ""  # who uploaded (a user's id, or the principal's name)


def owner_of(who: Principal | None) -> str:
    """Whose a job is: a user's id, else the principal's name ("local", "admin key")."""
    if who is None:
        return ""
    return who.user_id or who.name


def figure(value: float) -> str:
    """A test metric as the pages print it: a count as a whole number, else four decimals."""
    if value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4f}"


@dataclass(frozen=True)
class MetricGroups:
    """A model's metrics as the model page shows them: the overall figures, and the per-label
    ones (keys ``<metric>:<label>`` for a label of the model) as one row per label."""

    overall: dict[str, float]
    names: list[str]
    per_label: dict[str, dict[str, float]]


def metric_groups(manifest: Manifest) -> MetricGroups:
    """Split ``manifest.metrics`` into overall and per-label figures (see :class:`MetricGroups`);
    labels in the model's order, metric names in the order first met."""
    labels = manifest.output.labels or []
    overall: dict[str, float] = {}
    names: list[str] = []
    found: dict[str, dict[str, float]] = {}
    for key, value in manifest.metrics.items():
        name, _, label = key.partition(":")
        if label not in labels:
            overall[key] = value
            continue
        found.setdefault(label, {})[name] = value
        if name not in names:
            names.append(name)
    per_label = {label: found[label] for label in labels if label in found}
    return MetricGroups(overall, names, per_label)


def kind_words(model: LoadedModel) -> str:
    schema = model.manifest.input
    if isinstance(schema, SequenceSchema):
        return f"DNA, {schema.length_rule()}"
    if isinstance(schema, TabularSchema):
        return f"{len(schema.features)} measurements"
    return f"image, {schema.width}x{schema.height}, {schema.channels} channel(s)"


PLOTS = ("loss", "roc", "scatter", "errors", "confusion")


def plots(model: LoadedModel) -> dict[str, Any]:
    """The model's plot data (JSON files in the bundle), as SVG / table data for templates."""
    folder = model.predictor.bundle_path

    def read(name: str) -> bytes | None:
        path = folder / name
        return path.read_bytes() if path.is_file() else None

    return draw_plots(read)


def draw_plots(read: Callable[[str], bytes | None]) -> dict[str, Any]:
    """A bundle's plots from its ``plots/<name>.json`` files (``read`` gives a file's bytes, or
    None when the bundle has none): SVG, or the confusion matrix's rows; bad data is left out."""
    out: dict[str, Any] = {}
    for name in PLOTS:
        raw = read(f"plots/{name}.json")
        if raw is None:
            continue
        try:
            data = json.loads(raw)
            if name == "loss":
                out[name] = charts.loss([("", data)])
            elif name == "confusion":
                out[name] = charts.confusion_rows(data)
            else:
                out[name] = getattr(charts, name)(data)
        except (ValueError, KeyError, TypeError):
            continue
    return out


class Pages:
    """Renders templates (the one place the UI builds responses)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(
            headline=headline_of, kind_words=kind_words, metric_groups=metric_groups
        )
        self.templates.env.filters["figure"] = figure

    def __call__(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        keys_on = not self.server.keys.predict_open
        accounts_on = self.server.access.accounts_on
        who = getattr(request.state, "who", None)
        user = who.name if who is not None and who.kind == "user" else None
        key_session = self.server.sessions.scope(request.cookies.get(COOKIE)) is not None
        shared = {
            "csrf_token": csrf.token(request),
            "keys_on": keys_on,
            "accounts_on": accounts_on,
            "user": user,
            "signed_in": user is not None or (keys_on and key_session),
        }
        response: Response = self.templates.TemplateResponse(
            request, template, {**context, **shared}, status_code=status
        )
        csrf.remember(request, response)
        return response

    def error(self, request: Request, err: BaseException, message: str | None = None) -> Response:
        """The error page for ``err`` with the status of :mod:`helixserve.error_table`, showing
        ``message`` (default ``str(err)``)."""
        message = str(err) if message is None else message
        return self(request, "error.html", status_of(err), message=message)


def page_model(server: Server, request: Request, name: str, version: str | None) -> LoadedModel:
    """The model a page shows, if the page's caller (``request.state.who``, set by the page
    guard) may use it."""
    who = getattr(request.state, "who", None)
    if server.access.accounts_on:
        if who is None:
            raise ModelNotFound(f"no model named {name!r} is served.")
        server.access.check_model(who, name)
    return server.registry.resolve(name, version)


def lineage_manifest(server: Server, ref: str) -> Manifest:
    """A version's manifest for the lineage chain: the loaded one, else the store's."""
    parsed = parse_ref(ref)
    entry = server.registry.snapshot.models.get(parsed.name)
    if entry is not None and parsed.version in entry.versions:
        return entry.versions[parsed.version].manifest
    return server.store.manifest(parsed)


def served_links(server: Server, chain: Chain) -> set[str]:
    """The ``name@version`` of each link that this server serves (those get a link)."""
    models = server.registry.snapshot.models
    return {
        link.ref
        for link in chain.links
        if link.name in models and link.version in models[link.name].versions
    }


def png_plots(model: LoadedModel, drawn: dict[str, Any]) -> list[str]:
    """The bundle's PNG plots that the page cannot draw from JSON (e.g. saliency maps)."""
    return sorted(
        f.removeprefix("plots/")
        for f in model.manifest.files
        if f.startswith("plots/")
        and f.endswith(".png")
        and f.removeprefix("plots/").removesuffix(".png") not in drawn
    )


def job_view(job: Job, page_no: int) -> dict[str, Any]:
    """A scored file's page ``page_no`` (clamped): good and bad rows, the rows shown, pages."""
    good = [r for r in job.rows if r.prediction is not None]
    bad = [r for r in job.rows if r.error is not None]
    pages = max(1, -(-len(good) // PAGE))
    page_no = min(max(page_no, 1), pages)
    shown = good[(page_no - 1) * PAGE : page_no * PAGE]
    return {"good": good, "bad": bad, "shown": shown, "page_no": page_no, "pages": pages}


def attachment(name: str) -> str:
    """A Content-Disposition for ``name`` whatever its characters: an ASCII ``filename`` and the
    exact name as RFC 6266 ``filename*`` (a header must be Latin-1; '文件' used to be a 500)."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


async def form_item(model: LoadedModel, form: Any) -> tuple[object, str | None]:
    """The one input a predict form holds, or a problem to show next to the field."""
    schema = model.manifest.input
    if isinstance(schema, SequenceSchema):
        return sequence_from_text(str(form.get("sequence") or "")), None
    if isinstance(schema, TabularSchema):
        return {f.name: form.get(f.name, "") for f in schema.features}, None
    upload = form.get("image")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return b"", "choose an image file (PNG, JPEG or TIFF) first."
    return await upload.read(), None


def filled_in(model: LoadedModel, item: object) -> list[str]:
    """The measurements of a tabular form left empty, which a model that allows missing values
    filled in (imputed) itself: the page says so beside the answer."""
    schema = model.manifest.input
    if not isinstance(schema, TabularSchema) or not isinstance(item, dict):
        return []
    return [f.name for f in schema.features if not str(item.get(f.name, "") or "").strip()]


def preview(data: bytes, max_pixels: int) -> str | None:
    """A small PNG data URL of an uploaded image (any bit depth), or None if it cannot be read
    or has more than ``max_pixels`` pixels (checked from the header: a bomb is never decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > max_pixels:
                return None
            opened.thumbnail((256, 256))
            pixels = np.asarray(opened, dtype=np.float64)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    low, high = float(pixels.min()), float(pixels.max())
    scaled = ((pixels - low) / ((high - low) or 1.0) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(scaled).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def sequence_from_text(text: str) -> str:
    """A pasted sequence, or the sequence of pasted one-record FASTA text."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and lines[0].startswith(">"):
        return "".join(line for line in lines[1:] if not line.startswith(">"))
    return "".join(lines)


def field_errors(model: LoadedModel, err: HelixError) -> dict[str, str]:
    schema = model.manifest.input
    if isinstance(schema, TabularSchema):
        parts = getattr(err, "field_errors", None) or [err]
        return {str(getattr(p, "field", "") or "row"): getattr(p, "problem", str(p)) for p in parts}
    if isinstance(schema, ImageSchema):
        return {"image": str(err)}
    return {"sequence": str(err), "position": str(getattr(err, "position", "") or "")}
