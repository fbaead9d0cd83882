"""What design and variant effects find on the yeast-utr model (issue #8's truth check for U2).

Run with ``python -m benchmarks.design_yeast`` (needs ../shared/data and the zoo's yeast-utr).
On the native UTRs of the zoo's test split (t0 > 100, random 70/10/20, seed 0):

1. every UTR with an upstream ATG: the predicted change when that ATG is broken (its G -> T,
   the smallest edit that removes it) — how often it raises predicted expression, and by how
   much (median);
2. greedy design (goal max, 40 rounds, as the Cuperus et al. evolution) from the first
   ``--starts`` of those UTRs, with no constraint: how many upstream ATGs the designed UTRs keep,
   and the predicted score at the start and the end.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from helixserve.explain.design import design
from helixserve.explain.ism import Variant, variant_effects
from helixserve.inputs.sequence import SequenceSchema
from helixserve.runtime import Predictor
from helixserve.store import ModelStore
from helixserve.store.configured import PRETRAINED_STORE as ZOO_STORE
from helixserve.training.cli_support import parse_filter
from helixserve.training.data import load_sequences, split

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuperus2017_yeast_utr"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    store = ModelStore.open(str(ZOO_STORE))
    predictor = Predictor.from_store(store, "yeast-utr")
    schema = predictor.manifest.input
    assert isinstance(schema, SequenceSchema)
    data = load_sequences(
        DATA / "Native_UTRs.csv.gz",
        schema,
        target_col="growth_rate",
        sequence_col="UTR",
        id_col="UTR_name",
        where=parse_filter("t0>100"),
    )
    test = [str(data.inputs[i]) for i in split(data, task="regression", seed=0).test]
    with_atg = [s for s in test if "ATG" in s]
    changes = []
    for utr in with_atg:
        at = utr.index("ATG") + 3  # 1-based position of the G
        changes.append(variant_effects(predictor, utr, [Variant(at, "G", "T")])[1][0])
    raised = sum(c > 0 for c in changes)
    print(f"test UTRs: {len(test):,}; with an upstream ATG: {len(with_atg):,}")
    print(
        f"breaking the first uATG (G->T) raises predicted growth in {raised}/{len(changes)} "
        f"({raised / len(changes):.1%}); median change {statistics.median(changes):+.3f}"
    )
    kept, starts, ends = [], [], []
    for utr in with_atg[: args.starts]:
        steps = design(predictor, utr, goal="max", rounds=args.rounds)
        kept.append((utr.count("ATG"), steps[-1].sequence.count("ATG")))
        starts.append(steps[0].score)
        ends.append(steps[-1].score)
    before, after = sum(k[0] for k in kept), sum(k[1] for k in kept)
    removed_all = sum(k[1] == 0 for k in kept)
    print(
        f"design, {len(kept)} starts x up to {args.rounds} rounds, unconstrained: uATGs "
        f"{before} -> {after}; {removed_all}/{len(kept)} designs have none left; predicted "
        f"growth median {statistics.median(starts):+.3f} -> {statistics.median(ends):+.3f}"
    )


if __name__ == "__main__":
    main()
