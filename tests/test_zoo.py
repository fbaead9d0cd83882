"""The pretrained zoo shipped in the package: present, verified, and predicting sensibly
with ONNX Runtime alone."""

from __future__ import annotations

from pathlib import Path

import pytest

import helixserve
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import ItemError, Prediction, Predictor
from helixserve.store import ModelStore

ZOO = Path(helixserve.__file__).parent / "zoo" / "store"
MOTIF = "CGACCGAACTCC"
TUMOUR = [
    "clump_thickness",
    "uniformity_cell_size",
    "uniformity_cell_shape",
    "marginal_adhesion",
    "single_epithelial_cell_size",
    "bare_nuclei",
    "bland_chromatin",
    "normal_nucleoli",
    "mitoses",
]


@pytest.fixture
def zoo(tmp_path: Path) -> ModelStore:
    return ModelStore.open(str(ZOO), cache_dir=tmp_path / "cache")


def test_zoo_models_are_promoted_and_documented(zoo: ModelStore) -> None:
    for name in ("primer-binding", "tumor-wisconsin", "yeast-utr"):
        assert "production" in zoo.aliases(name)
        manifest = zoo.manifest(name)
        card = (zoo.pull(name).path / "card.md").read_text()
        assert "## Limits" in card and "## Metrics (test set)" in card
        assert manifest.training_data_sha256 is not None


def test_primer_binding(zoo: ModelStore) -> None:
    manifest = zoo.manifest("primer-binding")
    assert manifest.metrics["accuracy"] >= 0.995  # the U1 target, on the tutorial's 25% split
    predictor = Predictor.from_store(zoo, "primer-binding")
    with_motif = "A" * 20 + MOTIF + "A" * 18
    without = "ACGT" * 12 + "AC"
    results = predictor.predict([with_motif, without, "ACGF"])
    assert isinstance(results[0], Prediction) and results[0].label == "1"
    assert isinstance(results[1], Prediction) and results[1].label == "0"
    assert isinstance(results[2], ItemError)


def test_tumor_wisconsin(zoo: ModelStore) -> None:
    predictor = Predictor.from_store(zoo, "tumor-wisconsin")
    benign, malignant, missing = predictor.predict(
        [
            dict.fromkeys(TUMOUR, 1),
            dict.fromkeys(TUMOUR, 10),
            {**dict.fromkeys(TUMOUR, 1), "bare_nuclei": "?"},
        ]
    )
    assert isinstance(benign, Prediction) and benign.label == "benign"
    assert isinstance(malignant, Prediction) and malignant.label == "malignant"
    assert isinstance(missing, Prediction) and missing.label == "benign"


def test_amr_resistance_scores_genes_and_documents_the_isolate_rule(zoo: ModelStore) -> None:
    assert "production" in zoo.aliases("amr-resistance")
    manifest = zoo.manifest("amr-resistance")
    assert 0 < manifest.metrics["isolate_threshold"] < 1 and manifest.metrics["isolates"] == 30
    card = (zoo.pull("amr-resistance").path / "card.md").read_text()
    assert "## From genes to isolates" in card and "## Limits" in card
    predictor = Predictor.from_store(zoo, "amr-resistance")
    gene, bad = predictor.predict(["ATG" + "ACGT" * 300, "ACGZ"])
    assert isinstance(gene, Prediction) and gene.probabilities is not None
    assert isinstance(bad, ItemError)


def test_yeast_utr(zoo: ModelStore) -> None:
    schema = zoo.manifest("yeast-utr").input
    assert isinstance(schema, SequenceSchema) and schema.padding == "left"
    predictor = Predictor.from_store(zoo, "yeast-utr")
    plain = "CAAAAA" * 8 + "CA"
    upstream_atg = plain[:20] + "ATG" + plain[23:]  # an out-of-frame upstream start codon
    results = predictor.predict([plain, upstream_atg, "AC", "A" * 51, "ACGN"])
    values = [r.value for r in results[:3] if isinstance(r, Prediction) and r.value is not None]
    assert len(values) == 3 and all(-3.0 < v < 3.0 for v in values)
    assert values[1] < values[0]  # upstream ATGs lower expression (Cuperus et al. 2017)
    assert all(isinstance(r, ItemError) for r in results[3:])


def test_rxrx1_celltype_reads_one_native_size_nuclear_image(zoo: ModelStore) -> None:
    import io

    import numpy as np
    from PIL import Image

    assert "production" in zoo.aliases("rxrx1-celltype")
    manifest = zoo.manifest("rxrx1-celltype")
    schema = manifest.input
    assert (schema.kind, schema.width, schema.height, schema.channels, schema.resize) == (  # type: ignore[union-attr]
        "image",
        512,
        512,
        1,
        False,
    )
    assert manifest.output.labels == ["HEPG2", "HUVEC", "RPE", "U2OS"]
    assert manifest.metrics["external_records"] == 4 and "plots/saliency.json" in manifest.files
    card = (zoo.pull("rxrx1-celltype").path / "card.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "## External test set" in card
    assert "## What the model looks at" in card

    def png(side: int) -> bytes:
        pixels = np.random.default_rng(side).integers(0, 60, (side, side), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    good, small = Predictor.from_store(zoo, "rxrx1-celltype").predict([png(512), png(256)])
    assert isinstance(good, Prediction) and good.label in manifest.output.labels
    assert isinstance(small, ItemError)
