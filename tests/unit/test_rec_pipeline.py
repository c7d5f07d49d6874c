"""End to end through the real CLI on a small synthetic file: train, checkpoint, evaluate."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from models.checkpoint import load_checkpoint
from models.data import load_sequences
from models.rec import baselines, hybrid, protocol
from models.rec.blend import LogBlend
from models.rec.hybrid import HybridRecommender
from models.rec.sasrec import SASRecConfig
from models.rec.baselines import TransitionConfig


@pytest.fixture()
def data_file(tmp_path):
    """Users walk a ring of 40 items (next = +1 or +2), from random starts; ids are not contiguous."""
    rng = np.random.default_rng(1)
    lines = []
    for u in range(120):
        item, seq = int(rng.integers(40)), []
        for _ in range(int(rng.integers(4, 9))):
            seq.append(f"i{item * 7 + 100}")
            item = (item + int(rng.integers(1, 3))) % 40
        if len(set(seq)) == len(seq):
            lines.append(f"user{u} " + " ".join(seq))
    path = tmp_path / "ring.txt"
    path.write_text("\n".join(lines) + "\n")
    attrs = tmp_path / "attrs.json"
    attrs.write_text(json.dumps({f"i{i * 7 + 100}": [i % 5] for i in range(40)}))
    return path, attrs


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMRANK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STREAMRANK_REC_DIM", "16")
    return tmp_path / "state"


def test_evaluate_rec_prints_one_json_line_and_never_trains_on_last_items(data_file, capsys, monkeypatch, state_dir):
    path, attrs = data_file
    seen: list[list[np.ndarray]] = []

    def spy(fit):
        def wrapped(self, sequences, *a, **k):
            seen.append(list(sequences))
            return fit(self, sequences, *a, **k)
        return wrapped

    monkeypatch.setattr(baselines.Transition, "fit", spy(baselines.Transition.fit))
    monkeypatch.setattr(baselines.Popularity, "fit", spy(baselines.Popularity.fit))
    code = main(["evaluate", "rec", "--data", str(path), "--attributes", str(attrs), "--epochs", "3", "--json"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result) == {"model", "popularity", "transition", "seconds"}
    # the charts: a fresh folder under the state dir, printed just before the JSON line
    assert out[-2].startswith("plots: ")
    plots = Path(out[-2].removeprefix("plots: "))
    assert plots.parent == state_dir / "plots" and plots.name.startswith("evaluate-rec-")
    assert {p.name for p in plots.iterdir()} == {"bars.png", "training.png", "result.json"}
    assert all((plots / f).read_bytes()[:4] == b"\x89PNG" for f in ("bars.png", "training.png"))
    assert json.loads((plots / "result.json").read_text()) == result
    for name in ("model", "popularity", "transition"):
        assert list(result[name]) == ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"]
        assert all(0.0 <= v <= 1.0 for v in result[name].values())
    # the ring is learnable: transitions are far better than popularity
    assert result["transition"]["HR@10"] > result["popularity"]["HR@10"]
    assert result["model"]["HR@10"] > result["popularity"]["HR@10"]
    # no leakage: every sequence a count model was fitted on stops before the user's last item
    data = load_sequences(path)
    assert seen
    for sequences in seen:
        assert len(sequences) == len(data.sequences)
        for train, full in zip(sequences, data.sequences):
            assert len(train) <= len(full) - 1
            assert train.tolist() == full[: len(train)].tolist()


def test_final_model_sees_no_last_item(data_file, monkeypatch):
    path, _ = data_file
    data = load_sequences(path)
    calls: list[list[np.ndarray]] = []
    real = hybrid.fit_hybrid

    def spy(d, sequences, *a, **k):
        calls.append(list(sequences))
        return real(d, sequences, *a, **k)

    monkeypatch.setattr(protocol, "fit_hybrid", spy)
    cfg = hybrid.HybridConfig(dim=8, layers=1, train=hybrid.TrainConfig(epochs=1))
    protocol.fit_for_serving(data, cfg)
    assert len(calls) == 2  # validation run, final run
    for holdout, sequences in zip((2, 1), calls):
        for train, full in zip(sequences, data.sequences):
            assert len(train) == max(len(full) - holdout, 0)


def test_train_writes_checkpoint_card_and_plot_that_reload(data_file, capsys, state_dir):
    path, attrs = data_file
    assert main(["train", "--data", str(path), "--attributes", str(attrs), "--epochs", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ck = load_checkpoint(summary["checkpoint"])
    assert ck.path == state_dir / "models" / "rec" / "v0001"
    assert (ck.path / "training.png").read_bytes()[:4] == b"\x89PNG"
    card = ck.card
    assert card["epochs"] == 2 and len(card["loss"]) == 2
    assert "NDCG@10" in card["metrics"]["validation"] and card["data"]["items"] == len(card["item_ids"])
    assert card["settings"]["hybrid"]["train"]["epochs"] == 2
    data = load_sequences(path, attrs)
    model = HybridRecommender.from_tensors(
        ck.tensors,
        SASRecConfig(**card["settings"]["model"]),
        TransitionConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["settings"]["hybrid"]["transition"].items()}),
        LogBlend(**card["blend"]),
        data.item_attributes,
    )
    scores = model.score([data.sequences[0][:-1]])
    assert scores.shape == (1, data.n_items) and torch.isfinite(scores).all()


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "rec", "--data", str(tmp_path / "nope.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_exports_item_vectors_the_gateway_can_serve(data_file, capsys, state_dir):
    from models.rec.embedding_version import NAME, EmbeddingRecVersion

    path, attrs = data_file
    assert main(["train", "--data", str(path), "--attributes", str(attrs), "--epochs", "1"]) == 0
    served = EmbeddingRecVersion.from_checkpoint(str(state_dir / "models" / NAME))
    data = load_sequences(path, attrs)
    assert served.item_ids == tuple(data.items) and served.vectors.shape[0] == data.n_items
    history = [data.items[i] for i in data.sequences[0][:3]]
    ranked = served.rank(history, 5, exclude=history)
    assert len(ranked) == 5 and not set(history) & {i for i, _ in ranked}


def test_train_writes_the_first_neural_version_the_learner_warm_starts_from(data_file, capsys, state_dir):
    from app.learner import load_neural
    from app.settings import Settings
    from models.rec.neural_version import NAME, NeuralRecVersion

    path, attrs = data_file
    assert main(["train", "--data", str(path), "--attributes", str(attrs), "--epochs", "1"]) == 0
    first = NeuralRecVersion.from_checkpoint(state_dir / "models" / NAME)
    data = load_sequences(path, attrs)
    assert first.item_ids == tuple(data.items) and first.blend == 0.0  # not yet validated against the live counts
    # it ranks as the trained SASRec does (the checkpoint's own weights, attributes folded into the rows)
    ck = load_checkpoint(state_dir / "models" / "rec")
    card = ck.card
    model = HybridRecommender.from_tensors(
        ck.tensors, SASRecConfig(**card["settings"]["model"]),
        TransitionConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["settings"]["hybrid"]["transition"].items()}),
        LogBlend(**card["blend"]), data.item_attributes)
    sequence = data.sequences[0][:3]
    history = [data.items[i] for i in sequence]
    logits = model.sasrec.score([sequence])[0]
    probabilities = torch.softmax(logits, 0)
    got = first.rank(history, 5)
    assert [i for i, _ in got] == [data.items[int(j)] for j in torch.argsort(logits, descending=True)[:5]]
    assert [s for _, s in got] == pytest.approx([float(probabilities[data.items.index(i)]) for i, _ in got], rel=1e-3)
    neural = load_neural(Settings.from_env())
    assert neural is not None and [i for i, _ in neural.model.rank(history, 5, exclude=history)] == [
        i for i, _ in first.rank(history, 5, exclude=history)]
