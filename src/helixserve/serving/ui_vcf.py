"""The web UI's VCF upload on a DNA model's variant page: a VCF and its reference in, the effect
of every ALT allele out (the routes are in :mod:`helixserve.serving.routes.ui_explain`).

Contract:
- The form (``POST /models/{name}/variants/vcf``) takes ``vcf`` (VCF, plain, gzip or bgzip),
  ``reference`` (FASTA, plain, gzip or bgzip) and ``strands`` (``forward`` or ``both``). A missing
  file, a bad option or a file that cannot be read is shown next to its field (:func:`read_form`,
  :func:`field_of`), the variant page kept as it was; the limits of every upload apply.
- A scored file is kept for its uploader like a scored prediction file (the last 16 results, in
  :class:`~helixserve.serving.jobs.JobStore`) and shown at ``/models/{name}/variants/vcf/{id}``:
  the counts, every refused allele with its reason (the first :data:`SHOWN_REFUSED`), the scored
  alleles by decreasing ``|effect|`` (the first :data:`SHOWN_EFFECTS`), and the downloads of
  :data:`DOWNLOADS`: the VCF with its INFO fields, the table (TSV) and the refused alleles (CSV),
  the same files ``helixserve variants`` writes.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile

from helixserve.errors import InputError
from helixserve.explain.ism import dna_schema
from helixserve.explain.vcf_effects import VcfOptions
from helixserve.explain.windows import windowing
from helixserve.serving.registry import LoadedModel
from helixserve.serving.vcf_files import VcfResult

SHOWN_EFFECTS = 200
SHOWN_REFUSED = 500
DOWNLOADS = {
    "effects.vcf": "text/x-vcf; charset=utf-8",
    "effects.tsv": "text/tab-separated-values; charset=utf-8",
    "errors.csv": "text/csv; charset=utf-8",
}
FIELDS = ("vcf", "reference", "strands")


def window_words(model: LoadedModel) -> str:
    """The window a DNA model reads around a variant, in words (``50 nt around the variant``)."""
    return windowing(dna_schema(model.predictor)).words()


def read_form(form: Any) -> tuple[UploadFile | None, UploadFile | None, VcfOptions, dict[str, str]]:
    """The two files and the options of the form, and the errors per field."""
    errors: dict[str, str] = {}
    vcf, reference = form.get("vcf"), form.get("reference")
    if not isinstance(vcf, UploadFile) or not vcf.filename:
        errors["vcf"] = "choose a VCF file (.vcf or .vcf.gz) first."
        vcf = None
    if not isinstance(reference, UploadFile) or not reference.filename:
        errors["reference"] = "choose the reference FASTA the VCF was called against."
        reference = None
    strands = str(form.get("strands") or "forward")
    if strands not in ("forward", "both"):
        errors["strands"] = f"strands must be forward or both, got {strands!r}."
        strands = "forward"
    return vcf, reference, VcfOptions("both" if strands == "both" else "forward"), errors


def field_of(err: InputError) -> str:
    """The form field an error of :func:`~helixserve.serving.vcf_files.score_upload` belongs to."""
    return err.field if err.field in FIELDS else "vcf"


def stored(result: VcfResult, model: LoadedModel, vcf_name: str) -> dict[str, Any]:
    """What the result page and its downloads need, as JSON data for the job store."""
    summary = result.as_json(model)
    effects = sorted(summary["effects"], key=lambda e: -abs(e["effect"]))
    return {
        "vcf": vcf_name,
        "reference": result.reference_name,
        "records": summary["records"],
        "scored": summary["scored"],
        "refused": summary["refused"],
        "window": summary["window"],
        "strands": summary["strands"],
        "effects": effects[:SHOWN_EFFECTS],
        "errors": summary["errors"][:SHOWN_REFUSED],
        "files": {
            "effects.vcf": result.vcf().decode("utf-8", "replace"),
            "effects.tsv": result.table("\t").decode(),
            "errors.csv": result.errors().decode(),
        },
    }
