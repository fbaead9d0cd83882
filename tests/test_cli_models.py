"""``helixserve models ...`` end to end: import, list, show, promote, push, pull, delete."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helixserve.runtime.predictor import Predictor
from helixserve.store import ModelStore
from helixserve.workspace.audit import events
from helixserve.workspace.models import Deployment
from helixserve.workspace.projects import get_project
from tests.support.onnx_models import gc_binary_model
from tests.support.s3server import S3Server
from tests.support.worker_runs import add_dataset, open_space, queue

SCHEMA = """\
task: binary
description: Does the protein bind this 50-nt sequence?
input: {kind: dna, length: 50, alphabet: ACGT}
output: {labels: [no-bind, bind]}
metrics: {accuracy: 0.985}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "HELIXSERVE_STORE": str(tmp_path / "store"),
        "HELIXSERVE_CACHE_DIR": str(tmp_path / "cache"),
        "HELIXSERVE_PRETRAINED": "false",
        "COLUMNS": "200",
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},  # the tree under test
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helixserve", "models", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def import_model(
    env: dict[str, str], folder: Path, model: bytes, schema: str, name: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Write a model and a schema file into ``folder`` and run ``models import``."""
    (folder / "model.onnx").write_bytes(model)
    (folder / "schema.yaml").write_text(schema)
    return cli(
        env,
        "import",
        str(folder / "model.onnx"),
        "--schema",
        str(folder / "schema.yaml"),
        "--name",
        name,
        *extra,
    )


@pytest.fixture
def imported(tmp_path: Path, env: dict[str, str]) -> Path:
    (tmp_path / "model.onnx").write_bytes(gc_binary_model(50))
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    result = cli(
        env,
        "import",
        str(tmp_path / "model.onnx"),
        "--schema",
        str(tmp_path / "schema.yaml"),
        "--name",
        "primer-binding",
        "--alias",
        "production",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"imported {tmp_path / 'model.onnx'} as primer-binding@1\n"
    return tmp_path


def test_list_and_show(imported: Path, env: dict[str, str]) -> None:
    listed = cli(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert "primer-binding" in listed.stdout and "production→1" in listed.stdout
    assert "accuracy 0.985" in listed.stdout
    shown = cli(env, "show", "primer-binding@production")
    assert shown.returncode == 0, shown.stderr
    assert "dna: exactly 50 nt of A, C, G, T (onehot)" in shown.stdout
    assert "Does the protein bind this 50-nt sequence?" in shown.stdout


def test_promote_push_pull_delete(imported: Path, env: dict[str, str]) -> None:
    other = str(imported / "other-store")
    assert cli(env, "push", "primer-binding", "--to", other).stdout == (
        f"pushed primer-binding to {Path(other).resolve().as_uri()} as primer-binding@1\n"
    )
    pulled = cli(env, "pull", "primer-binding@1", "--from", other)
    assert pulled.stdout == f"pulled primer-binding@1 from {other} as primer-binding@2\n"
    assert cli(env, "promote", "primer-binding@2", "staging").stdout == (
        "primer-binding@staging → version 2\n"
    )
    cached = cli(env, "pull", "primer-binding@staging")
    assert cached.returncode == 0 and "primer-binding@2 verified in" in cached.stdout
    refused = cli(env, "delete", "primer-binding@1")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: primer-binding@1 is what alias production points to")
    assert cli(env, "delete", "primer-binding@1", "--force").stdout == "deleted primer-binding@1\n"


def test_errors_are_one_line(imported: Path, env: dict[str, str]) -> None:
    missing = cli(env, "show", "yeast-utr")
    assert missing.returncode == 1
    assert missing.stderr == (
        f"Error: no model named 'yeast-utr' in the store {(imported / 'store').as_uri()}; "
        "models: primer-binding. Add one with `helixserve train ...`, `helixserve models import "
        "MODEL.onnx ...` or `helixserve models pull NAME --from URI`.\n"
    )
    traversal = cli(env, "show", "../../etc")
    assert traversal.returncode == 1
    assert traversal.stderr.startswith("Error: model name '../../etc' is not allowed")
    no_version = cli(env, "delete", "primer-binding")
    assert no_version.stderr == (
        "Error: say which version to delete, e.g. primer-binding@3; got 'primer-binding'.\n"
    )


def test_import_refuses_a_model_that_does_not_fit_its_schema(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result = import_model(env, tmp_path, gc_binary_model(40), SCHEMA, "m")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: model.onnx of m@1 takes tensor(float) (N, 4, 40)")
    assert cli(env, "list").stdout.startswith("The store ")  # nothing was published


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            "task: binary\ninput: {kind: dna}\noutput: {labels: [a, b]}\ncolour: red\n",
            "has unknown key 'colour'; allowed keys are card, description, input, metrics, "
            "onnx_input, output, task.",
        ),
        (
            "task: binary\ninput: {kind: dna}\noutput: {labels: [a]}\n",
            "is not valid: (top level): Value error, a binary model needs exactly 2 output labels "
            "[negative, positive].",
        ),
        ("task: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_schema_files(tmp_path: Path, env: dict[str, str], schema: str, message: str) -> None:
    result = import_model(env, tmp_path, gc_binary_model(50), schema, "m")
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: schema file {tmp_path / 'schema.yaml'} ")
    assert message in result.stderr


def test_import_with_a_bad_alias_publishes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "model.onnx").write_bytes(gc_binary_model(50))
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    result = cli(
        env,
        "import",
        str(tmp_path / "model.onnx"),
        "--schema",
        str(tmp_path / "schema.yaml"),
        "--name",
        "m",
        "--alias",
        "12",
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "Error: alias '12' is not allowed: an alias cannot be all digits"
    )
    assert cli(env, "list").stdout.startswith("The store ")


def test_list_shows_a_damaged_model_as_a_row(imported: Path, env: dict[str, str]) -> None:
    (imported / "store" / "primer-binding" / "aliases" / "production.json").write_text("{bad")
    listed = cli(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert "error: alias file primer-binding/aliases/production.json is damaged" in listed.stdout


def test_models_commands_against_s3(
    s3_server: S3Server, tmp_path: Path, env: dict[str, str]
) -> None:
    env = {
        **env,
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": "RW",
        "AWS_SECRET_ACCESS_KEY": "RWS",
        "AWS_REGION": "us-east-1",
        "HELIXSERVE_STORE": "s3://models/cli-check",
    }
    (tmp_path / "model.onnx").write_bytes(gc_binary_model(50))
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    imported = cli(
        env,
        "import",
        str(tmp_path / "model.onnx"),
        "--schema",
        str(tmp_path / "schema.yaml"),
        "--name",
        "primer-binding",
    )
    assert imported.returncode == 0, imported.stderr
    local = str(tmp_path / "local")
    assert cli(env, "push", "primer-binding", "--to", local).returncode == 0
    assert "primer-binding" in cli(env, "list", "--store", local).stdout
    read_only = {**env, "AWS_ACCESS_KEY_ID": "RO", "AWS_SECRET_ACCESS_KEY": "ROS"}
    assert "primer-binding@1 verified in" in cli(read_only, "pull", "primer-binding").stdout
    refused = cli(read_only, "promote", "primer-binding@1", "production")
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "Error: the store at s3://models/cli-check refused to move alias primer-binding@production"
    )


def test_quantize_publishes_a_checked_int8_version(tmp_path: Path, env: dict[str, str]) -> None:
    zoo = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
    shutil.copytree(zoo / "primer-binding", tmp_path / "store" / "primer-binding")
    examples = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "examples"
    result = cli(
        env, "quantize", "primer-binding", "--calibration", str(examples / "primers.fasta")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("published primer-binding@2 (int8 of primer-binding@1): ")
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "c")
    manifest = store.manifest("primer-binding@2")
    assert manifest.description.endswith("(int8)")
    assert manifest.metrics["int8_label_agreement_vs_fp32"] == 1.0
    assert 0 < manifest.metrics["int8_max_abs_diff_vs_fp32"] < 0.05
    card = store.read_files("primer-binding@2")[1]["card.md"].decode()
    assert "## int8 quantisation" in card and "calibrated on 6 inputs" in card
    assert store.aliases("primer-binding") == {"production": 1}  # not promoted automatically
    results = Predictor.from_store(store, "primer-binding@2").predict(["CGACCGAACTCC" + "A" * 38])
    assert [getattr(r, "label", None) for r in results] == ["1"]


def test_whole_number_weights_stay_float(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from helixserve.runtime.quantize import exact_nodes

    index = numpy_helper.from_array(
        np.array([[[1.0], [4.0], [16.0], [64.0]]], np.float32), "w_index"
    )
    learned = numpy_helper.from_array(np.full((2, 4, 3), 0.25, np.float32), "w_learned")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w_index"], ["i"], name="kmer_index"),
            helper.make_node("Conv", ["x", "w_learned"], ["y"], name="filters"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [
            helper.make_tensor_value_info("i", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
        ],
        initializer=[index, learned],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    assert exact_nodes(tmp_path / "m.onnx") == ["kmer_index"]


def test_quantize_a_pretrained_model_measured_on_a_test_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    rng = np.random.default_rng(0)
    rows = ["id,sequence,bound"]
    for i in range(40):
        bases = "".join(rng.choice(list("ACGT"), 50))
        if i % 2:
            bases = bases[:20] + "CGACCGAACTCC" + bases[32:]
        rows.append(f"s{i},{bases},{i % 2}")
    (tmp_path / "test.csv").write_text("\n".join(rows) + "\n")
    layered = {**env, "HELIXSERVE_PRETRAINED": "true"}
    done = cli(
        layered,
        "quantize",
        "primer-binding",
        "--test-file",
        str(tmp_path / "test.csv"),
        "--target",
        "bound",
        "--samples",
        "64",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == (
        f"on {tmp_path / 'test.csv'} (40 rows): accuracy int8 1.0000, original 1.0000 (change "
        "+0.0000)"
    )
    store = ModelStore.open(str(tmp_path / "store"), cache_dir=tmp_path / "c")
    manifest = store.manifest("primer-binding@2")  # beside the pretrained @1, in the user's store
    ism = manifest.metrics  # the explanations' agreement, on the 40 test sequences
    assert ism["ism_sequences"] == 40.0 and ism["ism_spearman_vs_fp32"] >= 0.99
    assert done.stdout.splitlines()[2] == (
        f"ISM effects vs primer-binding@1: Spearman {ism['ism_spearman_vs_fp32']:.4f} on average "
        f"over 40 sequences (lowest {ism['ism_spearman_min_vs_fp32']:.4f}); it explains the "
        "original (precision auto)"
    )
    assert "weights.npz" not in manifest.files
    assert manifest.lineage is not None
    assert (manifest.lineage.how, manifest.lineage.parent) == ("quantize", "primer-binding@1")
    assert manifest.lineage.details["accuracy_delta"] == 0.0
    assert {k: manifest.metrics[k] for k in ("accuracy", "accuracy_fp32", "test_rows")} == {
        "accuracy": 1.0,
        "accuracy_fp32": 1.0,
        "test_rows": 40.0,
    }
    assert manifest.headline is not None and manifest.headline.meaning == (
        "accuracy of this int8 model on test.csv (40 rows); the original primer-binding@1: 1.0000"
    )
    card = store.read_files("primer-binding@2")[1]["card.md"].decode()
    assert (
        "On test.csv (40 rows) its accuracy is 1.0000, the original's 1.0000 (change +0.0000)."
        in card
    )
    shown = cli(layered, "show", "primer-binding@2")
    assert "quantize of primer-binding@1 (accuracy_delta 0, calibration_inputs 64)" in shown.stdout
    tested = cli(layered, "test", "primer-binding@2")
    assert tested.returncode == 0 and tested.stdout.startswith(
        "ok   primer-binding@2: 8 examples match"
    )
    missing = cli(
        layered, "quantize", "primer-binding@1", "--test-file", str(tmp_path / "test.csv")
    )
    assert missing.returncode == 1
    assert missing.stderr.replace("\n", "") == (
        f"Error: --test-file {tmp_path / 'test.csv'} has no column 'label'; its other columns are "
        "bound. Name the label column with --target."
    )


def test_store_changes_are_in_the_audit_log(imported: Path, env: dict[str, str]) -> None:
    """With a workspace database, push/promote/delete are recorded as ``local`` with the OS
    user; a model deployed from a project is recorded in that project (its owners see it)."""
    url = f"sqlite:///{imported / 'workspace.db'}"
    space = open_space(imported, url)
    add_dataset(space)
    run_id = queue(space)
    with space.db.session() as session:
        lab = get_project(session, "lab")
        deployed = Deployment(run_id=run_id, project_id=lab.id, model="primer-binding", version=1)
        session.add(deployed)
    with_db = {**env, "HELIXSERVE_DATABASE_URL": url}
    other = str(imported / "other-store")
    assert cli(with_db, "push", "primer-binding", "--to", other).returncode == 0
    assert cli(with_db, "promote", "primer-binding@1", "staging").returncode == 0
    assert cli(with_db, "delete", "primer-binding@1", "--force").returncode == 0
    with space.db.session() as session:
        found = [
            (e.actor, e.action, e.project_id, e.target, e.details) for e in events(session, None)
        ]
    space.db.close()
    me, store = getpass.getuser(), (imported / "store").as_uri()
    assert found == [
        (
            "local",
            "model.delete",
            lab.id,
            "model primer-binding@1",
            {"os_user": me, "force": True, "store": store},
        ),
        (
            "local",
            "model.promote",
            lab.id,
            "model primer-binding@1",
            {"os_user": me, "alias": "staging", "store": store},
        ),
        (
            "local",
            "model.push",
            lab.id,
            "model primer-binding@1",
            {"os_user": me, "source": store, "store": Path(other).resolve().as_uri()},
        ),
    ]


def test_no_workspace_database_is_made_for_the_audit_log(
    imported: Path, env: dict[str, str]
) -> None:
    assert cli(env, "promote", "primer-binding@1", "staging").returncode == 0
    assert not (Path(env["HOME"]) / ".helixserve" / "workspace.db").exists()
