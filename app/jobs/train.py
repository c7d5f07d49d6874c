"""`streamrank train`: fit the recommender on every item but each user's last; save a checkpoint.

    streamrank train --data ../shared/data/amazon-beauty/Beauty.txt [--attributes FILE] [--epochs N]

The blend of SASRec and transitions is tuned on the validation item (second-last) first; the
final model is then trained on all but the last item. Writes `<model_dir>/rec/v<NNNN>/`
(model.safetensors, card.json) and `training.png` beside them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from models.errors import DataError
from app.settings import Settings

MODEL_NAME = "rec"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("train", help="train the recommender (SASRec + transitions) and save a checkpoint")
    add_data_arguments(parser)
    parser.set_defaults(run=run)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="`user item item ...` file (default: data_dir/amazon-beauty/Beauty.txt)")
    parser.add_argument("--attributes", type=Path, default=None, help='optional JSON {"item": [attribute, ...]}')
    parser.add_argument("--epochs", type=int, default=None, help="max epochs per training run (default: settings rec_epochs)")
    parser.add_argument("--time-budget", type=float, default=None, help="max seconds per training run (default: settings rec_time_budget_s)")


def data_paths(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path | None]:
    data = (args.data or settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt").expanduser().resolve()
    attributes = args.attributes.expanduser().resolve() if args.attributes else None
    for path in (data, attributes):
        if path is not None and not path.is_file():
            raise DataError(f"{path} does not exist; pass --data FILE (and --attributes FILE) that exist")
    return data, attributes


def load_data(settings: Settings, args: argparse.Namespace) -> Any:
    """The Dataset named by --data/--attributes; DataError with the file name when unreadable."""
    from models.data import load_sequences

    data_path, attr_path = data_paths(settings, args)
    try:
        return load_sequences(data_path, attr_path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read {data_path}{' / ' + str(attr_path) if attr_path else ''}: {exc}") from exc


def hybrid_config(settings: Settings, args: argparse.Namespace) -> Any:
    """HybridConfig from settings, overridden by --epochs / --time-budget."""
    from models.rec.hybrid import HybridConfig
    from models.rec.training import TrainConfig

    epochs = args.epochs if args.epochs is not None else settings.rec.epochs
    budget = args.time_budget if args.time_budget is not None else settings.rec.time_budget_s
    if epochs < 1 or budget <= 0:
        raise DataError("--epochs must be >= 1 and --time-budget > 0")
    train = TrainConfig(
        epochs=epochs, time_budget_s=budget, negatives=settings.rec.negatives,
        lr=settings.rec.lr, batch_size=settings.rec.batch_size,
    )
    return HybridConfig(dim=settings.rec.dim, train=train)


class ProgressBar:
    """A tqdm bar per training phase, fed by the (phase, epoch, epochs, loss) callback."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, phase: str, epoch: int, epochs: int, loss: float) -> None:
        from tqdm import tqdm

        bar = self.bars.get(phase)
        if bar is None:
            self.close()  # one phase at a time: finish the previous bar first
            bar = self.bars[phase] = tqdm(total=epochs, desc=f"train ({phase})", unit="epoch")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()  # closing twice is harmless


def fit(settings: Settings, args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(dataset, model, FitReport, config) for the data named in args."""
    from models.rec.protocol import fit_for_serving

    data = load_data(settings, args)
    config = hybrid_config(settings, args)
    bar = ProgressBar()
    try:
        model, report = fit_for_serving(data, config, progress=bar)
    finally:
        bar.close()
    return data, model, report, config


def save(settings: Settings, args: argparse.Namespace, data: Any, model: Any, report: Any, config: Any, metrics: dict[str, Any]) -> Path:
    """Checkpoint (weights + card with data, settings, metrics) and the training-curve PNG."""
    from models.checkpoint import save_checkpoint
    from models.plots import plot_curves

    data_path, attr_path = data_paths(settings, args)
    card = {
        "kind": "hybrid-sasrec-transition",
        "data": {
            "path": str(data_path),
            "attributes": str(attr_path) if attr_path else None,
            "users": len(data.users),
            "items": data.n_items,
            "interactions": data.n_interactions,
            "trained_on": "every item but each user's last",
        },
        "settings": {"hybrid": config.to_dict(), "model": dataclasses.asdict(model.sasrec.config)},
        "blend": dataclasses.asdict(report.blend),
        "epochs": len(report.history.loss),
        "loss": report.history.loss,
        "metrics": metrics,
        "item_ids": data.items,
        "seconds": round(report.seconds, 1),
    }
    path = save_checkpoint(settings.runtime.model_dir, MODEL_NAME, model.to_tensors(), card)
    plot_curves(
        {"validation run": report.validation_history.loss, "final run": report.history.loss},
        path / "training.png",
        title=f"{MODEL_NAME} v{path.name[1:]}: sampled-softmax loss per epoch",
    )
    return path


def export_item_vectors(settings: Settings, data: Any, model: Any, checkpoint: Path) -> str:
    """The model's item vectors as a servable `rec-embeddings` version for the gateways."""
    import torch

    from models.rec.embedding_version import EmbeddingRecVersion

    with torch.no_grad():
        vectors = model.sasrec.encoder.all()
    version = EmbeddingRecVersion.build("export", data.items, vectors)
    return version.save(settings.runtime.model_dir, {"kind": "item-vectors", "source": str(checkpoint)})


def export_neural(settings: Settings, data: Any, model: Any, checkpoint: Path) -> Path:
    """The SASRec as the first `rec-neural` version: the online learner warm-starts from it and
    picks its blend weight on the stream (0 until then: gateways serve the item vectors)."""
    from models.rec.neural_version import NeuralRecVersion
    from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig

    online = OnlineSASRec.warm_start(model.sasrec, data.items, OnlineSASRecConfig(num_shards=1))
    version = NeuralRecVersion.from_model(online, "offline", blend=0.0)
    return version.save(settings.runtime.model_dir, {"kind": "offline", "source": str(checkpoint)})


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    settings = Settings.from_env()
    data, model, report, config = fit(settings, args)
    validation = {"blend": report.blend.name, **report.validation[report.blend.name]}
    neural = report.validation.get("neural", {})
    path = save(settings, args, data, model, report, config, {"validation": validation, "validation_neural": neural})
    serving = export_item_vectors(settings, data, model, path)
    neural_path = export_neural(settings, data, model, path)
    print(f"data: {len(data.users)} users, {data.n_items} items, {data.n_interactions} interactions")
    print(f"epochs: {len(report.history.loss)} (final loss {report.history.loss[-1]:.4f}); blend: {report.blend.name}")
    print(f"validation HR@10 {validation['HR@10']:.4f}  NDCG@10 {validation['NDCG@10']:.4f}")
    print(f"checkpoint: {path}  (plot: {path / 'training.png'})")
    print(f"serving item vectors: {serving}  (gateways hot-swap to it within STREAMRANK_MODEL_POLL_S)")
    print(f"neural model for the online learner: {neural_path}  (it learns on from it; gateways blend it once validated)")
    print(json.dumps({"checkpoint": str(path), "validation": validation, "seconds": round(time.monotonic() - started, 1)}))
    return 0
