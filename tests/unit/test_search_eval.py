"""`streamrank finetune` and `streamrank evaluate search` on a tiny synthetic catalog, through the CLI."""
import csv
import importlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch

import app.search_pipeline as pipeline
from app.cli import main
from app.search_model import load_search_model
from app.settings import Settings
from models.checkpoint import load_checkpoint

FAMILIES = {
    "drill": ["DEWALT 20-Volt Cordless Drill Driver Kit", "Ryobi 18-Volt Cordless Drill", "Milwaukee Hammer Drill 1/2 in."],
    "fan": ["Hampton Bay 52 in. Ceiling Fan with Light", "Westinghouse 42 in. Ceiling Fan", "Outdoor Ceiling Fan White"],
    "hose": ["50 ft. Garden Hose", "Expandable Garden Hose 100 ft.", "Hose Reel Cart"],
    "paint": ["BEHR 1 gal. Interior Paint Eggshell", "Glidden Exterior Paint 5 gal.", "Paint Roller Kit 9 in."],
    "toilet": ["American Standard Two-Piece Toilet", "KOHLER Elongated Toilet Seat", "Toilet Flapper Replacement"],
    "bracket": ["Simpson Strong-Tie 12-Gauge Angle", "Zinc Corner Brace 4-Pack", "Shelf Bracket Black 8 in."],
}
QUERIES = {
    "drill": ["cordless drill", "drill driver", "hammer drill", "18v drill", "power drill", "dewalt drill", "drill kit"],
    "fan": ["ceiling fan", "fan with light", "52 ceiling fan", "outdoor fan", "white ceiling fan", "hampton bay fan", "fan"],
    "hose": ["garden hose", "hose 50 ft", "expandable hose", "hose reel", "water hose", "100 ft hose", "hose"],
    "paint": ["interior paint", "exterior paint", "paint roller", "behr paint", "eggshell paint", "paint gallon", "paint"],
    "toilet": ["toilet", "toilet seat", "elongated toilet", "toilet flapper", "two piece toilet", "kohler toilet", "commode"],
    "bracket": ["angle bracket", "l bracket", "corner brace", "shelf bracket", "metal bracket", "simpson angle", "brace"],
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Threads spin against other processes on a small shared CPU; restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def rec_protocol_may_be_missing(monkeypatch):
    """`evaluate` registers every protocol; the rec one is built in parallel and may not exist yet."""
    try:
        importlib.import_module("app.jobs.evaluate_rec")
    except ModuleNotFoundError:
        monkeypatch.setitem(sys.modules, "app.jobs.evaluate_rec", types.SimpleNamespace(register=lambda sub: None))


@pytest.fixture
def csv_path(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMRANK_STATE_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("STREAMRANK_FINETUNE_BATCH_SIZE", "8")
    monkeypatch.setenv("STREAMRANK_SEARCH_CALIB_FRACTION", "0.3")
    monkeypatch.setenv("STREAMRANK_SEARCH_CANDIDATES", "5")
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "product_uid", "product_title", "search_term", "relevance"])
        n = 0
        for family, queries in QUERIES.items():
            for q, query in enumerate(queries):
                for t, title in enumerate(FAMILIES[family]):
                    n += 1
                    out.writerow([n, f"{family}-{t}", title, query, 3 if t == q % 3 else 2])
                other = "fan" if family != "fan" else "drill"
                n += 1
                out.writerow([n, f"{other}-0", FAMILIES[other][0], query, 1])
    return path


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err


def spy_on_fit(monkeypatch):
    """Record the query lists every fine-tune trains on (the real fit still runs)."""
    seen: list[set[str]] = []
    real = pipeline.fit

    def fit(settings, assets, train, calib, *args, **kwargs):
        seen.append(set(train) | set(calib))
        return real(settings, assets, train, calib, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit", fit)
    return seen


def test_finetune_then_evaluate_on_its_dev_queries(csv_path, tmp_path, capsys, monkeypatch):
    trained = spy_on_fit(monkeypatch)
    test_file = tmp_path / "dev.txt"
    code, out, _ = run_cli(capsys, "finetune", "--data", str(csv_path), "--epochs", "2", "--write-test-queries", str(test_file))
    assert code == 0
    ckpt = load_checkpoint(tmp_path / "var" / "models" / "search")
    assert (ckpt.path / "training_curve.png").stat().st_size > 1000
    dev = test_file.read_text().split("\n")[:-1]
    assert dev and dev == (ckpt.path / "dev_queries.txt").read_text().split("\n")[:-1]
    assert not set(dev) & set(ckpt.card["training_queries"]) and not set(dev) & trained[0]
    assert set(ckpt.card["training_queries"]) == trained[0]

    code, out, _ = run_cli(capsys, "evaluate", "search", "--data", str(csv_path), "--test-queries", str(test_file), "--json")
    assert code == 0
    result = json.loads(out[-1])
    assert set(result) == {"model", "bm25", "zero_shot", "seconds"}
    for system in ("model", "bm25", "zero_shot"):
        assert set(result[system]) == {"nDCG@10", "Recall@100"}
        assert 0.0 <= result[system]["nDCG@10"] <= 1.0 and 0.0 <= result[system]["Recall@100"] <= 1.0
    assert result["bm25"]["nDCG@10"] > 0.2  # the words overlap: a sane lexical baseline
    assert out[-2].startswith("plots: ")  # the charts' folder, printed just before the JSON line
    plots = Path(out[-2].removeprefix("plots: "))
    assert plots.parent == tmp_path / "var" / "plots" and (plots / "bars.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((plots / "result.json").read_text()) == result
    assert len(trained) == 1  # the clean checkpoint was used, nothing trained during evaluation


def test_evaluation_never_trains_on_a_test_query(csv_path, tmp_path, capsys, monkeypatch):
    trained = spy_on_fit(monkeypatch)
    assert run_cli(capsys, "finetune", "--data", str(csv_path), "--epochs", "1")[0] == 0
    first = load_checkpoint(tmp_path / "var" / "models" / "search")
    leaked = sorted(first.card["training_queries"])[:4]
    test_file = tmp_path / "tests.txt"
    test_file.write_text("".join(f"  {q.upper()} \n" for q in leaked))

    # an explicitly chosen checkpoint that saw a test query is refused
    code, _, err = run_cli(
        capsys, "evaluate", "search", "--data", str(csv_path), "--test-queries", str(test_file), "--checkpoint", str(first.path)
    )
    assert code == 2 and "trained on 4 test queries" in err

    # the latest one is replaced by a fine-tune without the test queries
    code, out, _ = run_cli(capsys, "evaluate", "search", "--data", str(csv_path), "--test-queries", str(test_file), "--json", "--epochs", "1")
    assert code == 0 and set(json.loads(out[-1])) == {"model", "bm25", "zero_shot", "seconds"}
    assert len(trained) == 2 and not trained[1] & set(leaked)
    second = load_checkpoint(tmp_path / "var" / "models" / "search")
    assert second.version == first.version + 1 and not set(second.card["training_queries"]) & set(leaked)

    code, _, err = run_cli(capsys, "evaluate", "search", "--data", str(csv_path), "--test-queries", str(test_file),
                           "--no-train", "--checkpoint", str(first.path))
    assert code == 2


def test_fine_tuned_query_encoder_is_saved_and_used(csv_path, tmp_path, capsys):
    code, _, _ = run_cli(capsys, "finetune", "--data", str(csv_path), "--epochs", "1", "--encoder-epochs", "1")
    assert code == 0
    ckpt = load_checkpoint(tmp_path / "var" / "models" / "search")
    assert ckpt.card["query_encoder"] == "fine-tuned" and ckpt.card["encoder_steps"] >= 1
    assert any(k.startswith("encoder.") for k in ckpt.tensors)
    tower, _ = load_search_model(Settings.from_env(), ckpt)
    assert tower.encoder is not None and tower.encoder.weights_id == ckpt.card["model_id"]
    code, out, _ = run_cli(
        capsys, "evaluate", "search", "--data", str(csv_path), "--test-queries", str(ckpt.path / "dev_queries.txt"),
        "--checkpoint", str(ckpt.path), "--json", "--no-train",
    )
    assert code == 0 and json.loads(out[-1])["model"]["nDCG@10"] > 0
