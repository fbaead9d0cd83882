"""Workspace operations: datasets with versions and subsets, checked experiments, compare,
deploy — on SQLite and on a real PostgreSQL, with the real yeast UTR file of the tutorial."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from helixserve.errors import (
    Conflict,
    DatasetNotFound,
    EmptySubset,
    InputError,
    InvalidBlocks,
    InvalidSubset,
    NameTaken,
    NotFound,
    RunNotFound,
    RunStateConflict,
    SplitOverlap,
)
from helixserve.params.declare import InvalidParameter
from helixserve.params.recipes import RECIPE_NAMES
from helixserve.settings import Settings
from helixserve.workspace import runs
from helixserve.workspace.checks import READS, ExperimentRequest, check_experiment
from helixserve.workspace.compare import compare_runs
from helixserve.workspace.datasets import (
    add_subset,
    add_version,
    create_dataset,
    delete_subset,
    get_dataset,
    get_version,
    list_subsets,
    set_roles,
    subset_sizes,
)
from helixserve.workspace.deploy import deploy, project_run
from helixserve.workspace.experiments import create_experiment
from helixserve.workspace.presets import presets
from helixserve.workspace.projects import create_project
from helixserve.workspace.space import Workspace


def _row(i: int) -> str:
    label, part = ("yes" if i % 3 else "no"), ("T" if i % 5 else "V")
    return f"r{i},{'ACGT' * 5}{'ACGT'[i % 4] * 6},{label},{i / 10},{part}\n"


CSV = ("id,seq,label,score,part\n" + "".join(_row(i) for i in range(60))).encode()


def where(column: str, op: str, value: object) -> dict[str, object]:
    return {"kind": "where", "column": column, "op": op, "value": value}


@pytest.fixture
def space(tmp_path: Path, database_url: str) -> Iterator[Workspace]:
    settings = Settings(
        database_url=database_url,
        workspace_store=str(tmp_path / "workspace"),
        store=str(tmp_path / "store"),
        pretrained=False,
    )
    opened = Workspace.from_settings(settings).open()
    yield opened
    opened.db.close()


@pytest.fixture
def lab(space: Workspace) -> Workspace:
    with space.db.session() as session:
        create_project(session, "lab")
        create_dataset(session, "lab", "small")
        add_version(session, space, "lab", "small", io.BytesIO(CSV), "small.csv")
        add_subset(
            session,
            "lab",
            "small",
            "train",
            where("part", "==", "T"),
        )
        add_subset(session, "lab", "small", "val", {"kind": "rest", "minus": ["train"]})
    return space


def request(**changes: object) -> ExperimentRequest:
    base = ExperimentRequest(
        dataset="small",
        target="label",
        train_subset="train",
        val_subset="val",
        recipe="dna-binary",
        params={"length": 26, "epochs": 2},
    )
    return base.model_copy(update=changes)


def test_versions_are_content_addressed_and_profiled(lab: Workspace) -> None:
    with lab.db.session() as session:
        again = add_version(session, lab, "lab", "small", io.BytesIO(CSV), "again.csv")
        latest = get_version(session, "lab", "small")
        assert again.id == latest.id and latest.filename == "small.csv"
        assert (latest.rows, latest.good_rows, latest.refused_rows) == (60, 60, 0)
        assert latest.profile["roles"] == {
            "id": "id",
            "seq": "sequence",
            "label": "category",
            "score": "number",
            "part": "split",
        }
        assert get_version(session, "lab", "small", latest.id[:8]).id == latest.id
        with pytest.raises(DatasetNotFound) as short:
            get_version(session, "lab", "small", "abc")
        assert str(short.value) == (
            f"dataset 'small' has versions {latest.id[:12]} (small.csv); 'abc' is not one of them "
            "(give 'latest', the sha256 or its first 8+ characters)."
        )
        assert set_roles(latest, {"score": "category"})["score"] == "category"
        with pytest.raises(InputError) as role:
            set_roles(latest, {"score": "colour"})
        assert str(role.value) == (
            "'colour' is not a column role; choose one of sequence, number, category, split, id, "
            "image, text."
        )


def test_subsets_are_checked_and_counted(lab: Workspace) -> None:
    with lab.db.session() as session:
        from helixserve.workspace.datasets import get_dataset, list_subsets

        dataset = get_dataset(session, "lab", "small")
        version = get_version(session, "lab", "small")
        assert subset_sizes(lab, version, list_subsets(session, dataset)) == {
            "train": 48,
            "val": 12,
        }
        with pytest.raises(NameTaken):
            add_subset(session, "lab", "small", "train", {"kind": "all"})
        with pytest.raises(InvalidSubset) as column:
            add_subset(
                session,
                "lab",
                "small",
                "odd",
                where("colour", "==", "x"),
            )
        assert str(column.value) == (
            "subset 'odd' reads column 'colour', which the dataset does not have; its columns "
            "are: id, seq, label, score, part."
        )
        with pytest.raises(InvalidSubset) as ref:
            add_subset(session, "lab", "small", "odd", {"kind": "rest", "minus": ["test"]})
        assert str(ref.value) == (
            "subset 'odd' refers to subset 'test', which dataset 'small' does not have; its "
            "subsets: train, val."
        )


UNNAMED = (
    " The column with no name (the file's header leaves its name empty; pandas writes row "
    "numbers there) cannot be used: name it in the file's header and upload the file again to "
    "use it."
)
COLUMNS = "id, seq, label, score, part"


def test_an_empty_column_name_is_refused_never_used(lab: Workspace) -> None:
    """Nothing chosen, or the header's column with no name (pandas' row numbers, as in the yeast
    tutorial's file): refused with what to do, never a subset or target of row numbers."""
    lines = CSV.decode().splitlines()
    numbered = "\n".join([f",{lines[0]}"] + [f"{k},{line}" for k, line in enumerate(lines[1:])])
    with lab.db.session() as session:
        with pytest.raises(InvalidSubset) as chosen:
            add_subset(session, "lab", "small", "odd", where("", ">", 1))
        assert str(chosen.value) == (
            f"subset 'odd': choose the column the condition reads; the dataset's columns are: "
            f"{COLUMNS}."
        )
        create_dataset(session, "lab", "numbered")
        add_version(session, lab, "lab", "numbered", io.BytesIO(numbered.encode()), "n.csv")
        asked = {
            "column": where("", ">", 10),
            "group": {"kind": "fraction", "fraction": 0.5, "group": ""},
        }
        for field, spec in asked.items():
            with pytest.raises(InvalidSubset) as unnamed:
                add_subset(session, "lab", "numbered", "odd", spec)
            what = "the column the condition reads" if field == "column" else "a group column"
            assert str(unnamed.value) == (
                f"subset 'odd': choose {what}; the dataset's columns are: {COLUMNS}.{UNNAMED}"
            )
            assert unnamed.value.field == field
        add_subset(session, "lab", "numbered", "train", where("part", "==", "T"))
        add_subset(session, "lab", "numbered", "val", where("part", "==", "V"))
    for dataset, note in (("small", ""), ("numbered", UNNAMED)):
        with lab.db.session() as session, pytest.raises(InputError) as target:
            check_experiment(session, lab, "lab", request(dataset=dataset, target=""))
        message = f"choose the target: the column to predict; the dataset's columns are: {COLUMNS}."
        assert (str(target.value), target.value.field) == (message + note, "target")


def test_a_subset_nothing_reads_can_be_deleted_and_defined_again(lab: Workspace) -> None:
    with lab.db.session() as session:
        add_subset(session, "lab", "small", "big", where("score", ">", 3))
        add_subset(session, "lab", "small", "rest", {"kind": "rest", "minus": ["big"]})
        create_experiment(session, "lab", "e1", check_experiment(session, lab, "lab", request()))
        with pytest.raises(NotFound) as unknown:
            delete_subset(session, "lab", "small", "nope")
        assert str(unknown.value) == (
            "dataset 'small' has no subset named 'nope'; its subsets: big, rest, train, val."
        )
        for used, by in (("big", "subset 'rest'"), ("train", "subset 'val', experiment 'e1'")):
            with pytest.raises(Conflict) as conflict:
                delete_subset(session, "lab", "small", used)
            assert str(conflict.value) == (
                f"subset {used!r} is read by {by}; delete or change those first (an experiment "
                "keeps the subsets it was made with: make a new subset instead)."
            )
        delete_subset(session, "lab", "small", "rest")
        delete_subset(session, "lab", "small", "big")
        add_subset(session, "lab", "small", "big", where("score", ">", 4))
        dataset = get_dataset(session, "lab", "small")
        assert [s.name for s in list_subsets(session, dataset)] == ["big", "train", "val"]


def test_every_recipe_says_what_it_reads() -> None:
    assert sorted(READS) == sorted(RECIPE_NAMES)


def refusals() -> list[tuple[ExperimentRequest, type[Exception], str | None]]:
    """Requests that must be refused, with the error and its exact message (None: any)."""
    overlap = (
        "the training subset 'all' and the validation subset 'val' share 12 rows (the first: "
        "good row 1); a row can be in one of them only. Define 'val' as the rest, e.g. "
        '{"kind": "rest", "minus": ["all"]}.'
    )
    return [
        (
            request(recipe="dna-regression", params={}),
            InputError,
            "the dna-regression recipe predicts a number, but target column 'label' holds "
            "category values; choose a number column, or a classification recipe.",
        ),
        (request(target="part", positive="V", train_subset="all"), SplitOverlap, overlap),
        (
            request(target="part"),
            InputError,
            "which class is the positive one? The target's two classes are 'T' and 'V', and "
            "neither is positive by convention (as 1, true, yes, positive or + are). Name it "
            "with positive=V or positive=T: the model's probability is that of the positive "
            "class.",
        ),
        (
            request(positive="maybe"),
            InputError,
            "positive=maybe names no class of the target; its two classes are 'no' and 'yes'. "
            "Name one of them.",
        ),
        (
            request(recipe="dna-regression", target="score", params={}, positive="1"),
            InputError,
            "a positive class is for a binary target, but target column 'score' holds a number; "
            "leave it out.",
        ),
        (request(val_subset="none"), EmptySubset, None),
        (
            request(val_subset="test"),
            InvalidSubset,
            "dataset 'small' has no subset named 'test'; its subsets: all, none, train, val.",
        ),
        (
            request(target="colour"),
            InputError,
            "the dataset has no column 'colour'; its columns are: id, seq, label, score, part.",
        ),
        (
            request(params={"arch": "gru"}),
            InvalidParameter,
            "The 'arch' parameter of dna-binary must be one of 'cnn', 'lstm'. Got 'gru' instead.",
        ),
        (
            request(inputs={"sequence": "label"}),
            InputError,
            "the dna-binary recipe reads a sequence column; 'label' is a category column. "
            "Choose another, or correct the column's role.",
        ),
        (request(blocks=[{"type": "dense", "units": 1}]), InvalidBlocks, None),
        (  # the data decide dna-classify's length: checked at the profile's longest, 26 nt
            request(
                recipe="dna-classify",
                params={},
                blocks=[{"type": "conv1d", "filters": 4, "kernel": 30}],
            ),
            InvalidBlocks,
            "block 1 (conv1d): kernel 30 is longer than the input (26).",
        ),
        (
            request(recipe="colour"),
            InputError,
            "unknown recipe 'colour'; choose one of dna-classify, dna-binary, dna-regression, "
            "dna-variable, tabular, image.",
        ),
    ]


def test_experiments_are_checked_before_they_are_stored(lab: Workspace) -> None:
    with lab.db.session() as session:
        spec = check_experiment(session, lab, "lab", request())
        assert (
            spec.inputs == {"sequence": "seq"}
            and spec.dataset_version == get_version(session, "lab", "small").id
        )
        create_experiment(session, "lab", "first", spec)
        add_subset(
            session,
            "lab",
            "small",
            "none",
            where("score", ">", 100),
        )
        add_subset(session, "lab", "small", "all", {"kind": "all"})
        cases = refusals()
        for asked, kind, message in cases:
            with pytest.raises(kind) as refused:
                check_experiment(session, lab, "lab", asked)
            if message is not None:
                assert str(refused.value) == message
        blocks = [b.model_dump() for b in presets("dna-binary", {"length": 26})]
        assert check_experiment(session, lab, "lab", request(blocks=blocks)).blocks == blocks


def test_the_positive_class_is_checked_with_the_target(lab: Workspace) -> None:
    with lab.db.session() as session:
        assert check_experiment(session, lab, "lab", request()).positive is None  # yes/no
        assert check_experiment(session, lab, "lab", request(positive="no")).positive == "no"
        chosen = check_experiment(session, lab, "lab", request(target="part", positive="T"))
        assert chosen.positive == "T"
        for asked in (request(target="part"), request(positive="maybe")):
            with pytest.raises(InputError) as refused:
                check_experiment(session, lab, "lab", asked)
            assert refused.value.field == "positive"


def test_compare_and_deploy_stay_in_their_project(lab: Workspace) -> None:
    with lab.db.session() as session:
        experiment = create_experiment(
            session, "lab", "first", check_experiment(session, lab, "lab", request())
        )
        run = runs.submit(session, experiment.id)
        create_project(session, "other")
        with pytest.raises(RunNotFound) as elsewhere:
            project_run(session, "other", run.id)
        assert str(elsewhere.value) == f"project 'other' has no run {run.id!r}."
        with pytest.raises(RunStateConflict):
            deploy(session, lab, "lab", run.id, "small-model")
        compared = compare_runs(session, "lab", [run.id, run.id])
        assert [r.id for r in compared.runs] == [run.id] and compared.differs == []


def test_compare_shows_a_parameter_left_out_at_its_default(lab: Workspace) -> None:
    """Set in one run, left out in another: the other shows the recipe's default, marked."""
    asked = {"fast": {"lr": 0.005}, "plain": {}, "same": {"lr": 0.001}}
    with lab.db.session() as session:
        ids = []
        for name, params in asked.items():
            spec = check_experiment(session, lab, "lab", request(params={"length": 26, **params}))
            ids.append(runs.submit(session, create_experiment(session, "lab", name, spec).id).id)
        compared = compare_runs(session, "lab", ids)
        assert [r.settings["params.lr"] for r in compared.runs] == [0.005, 0.001, 0.001]
        assert [r.defaults for r in compared.runs] == [[], ["params.lr"], []]
        assert compared.differs == ["params.lr"]
        assert compare_runs(session, "lab", ids[1:]).differs == []  # the default, spelled out


def test_the_tutorial_file_gives_the_tutorials_subsets(lab: Workspace, shared_data: Path) -> None:
    path = shared_data / "cuperus2017_yeast_utr" / "Native_UTRs.csv.gz"
    with lab.db.session() as session, path.open("rb") as stream:
        create_dataset(session, "lab", "utrs")
        version = add_version(session, lab, "lab", "utrs", stream, path.name)
        assert (version.rows, version.good_rows) == (11_856, 11_856)
        add_subset(
            session,
            "lab",
            "utrs",
            "measured",
            where("t0", ">", 100),
        )
        add_subset(
            session,
            "lab",
            "utrs",
            "train",
            {"kind": "fraction", "of": "measured", "fraction": 0.8, "seed": 0},
        )
        add_subset(
            session, "lab", "utrs", "val", {"kind": "rest", "of": "measured", "minus": ["train"]}
        )
        spec = check_experiment(
            session,
            lab,
            "lab",
            ExperimentRequest(
                dataset="utrs",
                target="growth_rate",
                train_subset="train",
                val_subset="val",
                recipe="dna-regression",
            ),
        )
        assert spec.inputs == {"sequence": "UTR"}
