from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ray_processes

from autoaug.augment.presets import PRESETS
from autoaug.errors import AutoaugError
from autoaug.report.document import to_html, to_markdown
from autoaug.report.finished import SEARCHED
from autoaug.report.reporter import compared_policies, make_report, twin_of
from autoaug.report.seeds import report_seeds
from autoaug.report.summary import by_policy, comparison_rows, main_table
from autoaug.search import SearchRecord
from autoaug.train.metrics import classification_metrics, confusion_matrix

FIGURES = {"learning_curves.png", "policy.png", "magnitudes.png", "search_progress.png", "confusion.png",
           "robustness.png", "samples.png"}
COMPARE = ("baseline", "trivialaugment", "feedback")  # `none` is added first
POLICIES = (SEARCHED, "none", *COMPARE)


@pytest.fixture(scope="module")
def report(search, tmp_path_factory: pytest.TempPathFactory):
    result, _ = search
    lines: list[str] = []
    rep = make_report(result.output_dir, seeds=2, out=tmp_path_factory.mktemp("reports"), robust_size=200,
                      num_cpus=2, cpus_per_trial=1, compare=COMPARE, echo=lines.append)
    return rep, lines


def test_report_files_and_table(report, search) -> None:
    rep, lines = report
    trained = 2 * (len(POLICIES) - bool(twin_of(search[0].best_policy, compared_policies(COMPARE))))
    assert FIGURES | {"report.md", "report.html", "comparison.csv", "runs.json", "best_policy.json"} <= {
        p.name for p in rep.folder.iterdir()}
    assert re.fullmatch(r"fashion_mnist_small-\d{8}-\d{6}", rep.folder.name)
    assert {p.name for p in (rep.folder / "search").iterdir()} == {"search.json", "trials.csv", "best_policy.json",
                                                                 "optuna.db"}
    assert "optuna_history.png" in {p.name for p in rep.folder.iterdir()}  # the search's Optuna study
    hidden = [p for p in rep.folder.parent.iterdir() if p.name.startswith(".")]
    # no staging folder left; the run journal is kept, and beside it the searched policy's model that MLflow got
    assert sorted(p.suffix for p in hidden) == [".jsonl", ".pt"]
    md = (rep.folder / "report.md").read_text()
    first_table = md[md.index("\n| policy |"):].split("\n\n")[0].strip().splitlines()
    assert [line.split(" | ")[0].strip("| ") for line in first_table[2:]] == list(POLICIES)
    assert all(" | 2 | " in line for line in first_table[2:])  # n = 2 seeds per policy
    assert sum(bool(re.search(rf"\] final \d+/{trained}: ", line)) for line in lines) == trained
    assert lines[-1].startswith("report: ")
    runs = json.loads((rep.folder / "runs.json").read_text())["records"]
    seeds = report_seeds(SearchRecord.from_file(search[0].output_dir), 2)
    assert [(r["policy"], r["seed"]) for r in runs] == [(p, s) for p in POLICIES for s in sorted(seeds)]
    assert "autoaug search fashion_mnist_small --budget tiny --seed 0 --trials 8 --epochs 3" in md
    assert "Robustness on the first 200 test images" in md
    assert not re.search(r"\{\w+(\.\w+)*\}", md)  # no template field left unfilled
    assert f"optuna-dashboard sqlite:///{rep.folder.name}/search/optuna.db" in md  # the kept folder's, not staging's
    assert f"autoaug report {rep.folder / 'search'} --seeds 2 --compare none,baseline,trivialaugment,feedback" in md
    assert {p.name for p in (rep.folder / "policies").iterdir()} == {f"{n}.json" for n in ("none", *COMPARE)}
    feedback = [r for r in runs if r["policy"] == "feedback"]
    assert all(r["control_share"] > 0 and "feedback/level" in r["history"][0] for r in feedback)


def _report_again(report, search, seeds: int):
    """The fixture's report made again on ``seeds`` seeds: ``(report, output lines, runs per seed)``."""
    rep, _ = report
    result, _ = search
    lines: list[str] = []
    again = make_report(result.output_dir, seeds=seeds, out=rep.folder.parent, robust_size=200, num_cpus=2,
                        cpus_per_trial=1, compare=COMPARE, echo=lines.append)
    return again, lines, len(POLICIES) - bool(twin_of(result.best_policy, compared_policies(COMPARE)))


def test_the_same_report_again_reuses_the_journal_without_training(report, search) -> None:
    rep, _ = report
    again, lines, per_seed = _report_again(report, search, seeds=2)
    trained = 2 * per_seed
    assert any(line.startswith(f"reusing {trained} of {trained} finished runs") for line in lines)
    assert not any("final" in line for line in lines[:-1]) and again.folder != rep.folder
    assert [r["acc_mean"] for r in again.rows] == [r["acc_mean"] for r in rep.rows]
    assert [(r["policy"], r["seed"], r["test"]) for r in again.records] == [
        (r["policy"], r["seed"], r["test"]) for r in rep.records]


def test_a_report_on_other_seeds_reuses_the_runs_of_the_seeds_it_shares(report, search) -> None:
    rep, _ = report
    first = report_seeds(SearchRecord.from_file(search[0].output_dir), 1)[0]
    fewer, lines, trained = _report_again(report, search, seeds=1)
    assert any(line.startswith(f"reusing {trained} of {trained} finished runs") for line in lines)
    assert not any(re.search(r"\] final \d+/", line) for line in lines)
    assert any("fixed at 2 seeds before any result: this one, on 1, is partial" in line for line in lines)
    assert {r["seed"] for r in fewer.records} == {first}  # the report's stream: one seed is its first
    assert [(r["policy"], r["test"]) for r in fewer.records] == [
        (r["policy"], r["test"]) for r in rep.records if r["seed"] == first]


def test_report_seeds_are_their_own_and_fixed_before_any_result(report, search) -> None:
    """The report's seeds are none of the search's or the selection's; their number went into search.json before
    the first run; the report says which seeds it used and why."""
    rep, _ = report
    result, _ = search
    record = SearchRecord.from_file(result.output_dir)
    used = {r["seed"] for r in rep.records}
    assert len(used) == 2 == record.report_seeds
    assert not used & {record.seed, *record.selection["seeds"]}
    text = (rep.folder / "report.md").read_text()
    assert f"none is the search's ({record.seed}) or the selection's ({record.selection['seeds'][0]})" in text
    assert all(str(seed) in text for seed in used)


def test_final_runs_train_with_the_searchs_recipe(search) -> None:
    from dataclasses import replace

    from autoaug.report import load_search
    from autoaug.search import BUDGETS

    found = load_search(search[0].output_dir)
    tiny = found.train_config()
    assert (tiny.optimizer, tiny.lr, tiny.weight_decay, tiny.epochs) == ("adam", 1e-3, 0.0, 3)
    demo = replace(found, record=found.record.replace(**BUDGETS["demo"].recipe())).train_config("fp32")
    assert (demo.optimizer, demo.lr, demo.weight_decay, demo.precision) == ("sgd", 0.05, 5e-4, "fp32")
    older = found.record.replace(optimizer=None, lr=None, weight_decay=None)  # a search that recorded no recipe
    assert replace(found, record=older).train_config().optimizer == "adam"


def test_comparison_is_paired_by_seed(report) -> None:
    rep, _ = report
    frame = pd.read_csv(rep.folder / "comparison.csv").set_index("policy")
    runs = json.loads((rep.folder / "runs.json").read_text())["records"]
    acc = {(r["policy"], r["seed"]): r["test"]["acc"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    for name in ("baseline", "trivialaugment"):
        diffs = [acc[(name, s)] - acc[("none", s)] for s in seeds]
        assert frame.loc[name, "acc_diff"] == pytest.approx(sum(diffs) / 2)
        assert frame.loc[name, "acc_verdict"] in ("better", "worse", "no significant difference")
    assert pd.isna(frame.loc["none", "acc_diff"])
    for r in runs:
        assert 0 <= r["test"]["acc"] <= 1 and r["train_seconds"] > 0 and 0 <= r["aug_share"] < 1
        assert len(r["corruptions"]) == 6 and all(len(v) == 5 for v in r["corruptions"].values())
        assert sum(map(sum, r["test"]["confusion"])) == 2000  # the whole test split
    none = [r for r in runs if r["policy"] == "none"]
    assert all(r["aug_share"] < 0.01 for r in none)  # no ops: the augmenter returns the batch as it is


def test_html_is_self_contained_with_table_and_images(report) -> None:
    rep, _ = report
    page = (rep.folder / "report.html").read_text()
    optuna = len(list(rep.folder.glob("optuna_*.png")))
    assert optuna >= 1 and page.count("data:image/png;base64,") == len(FIGURES) + optuna
    assert not re.search(r"src=['\"](?!data:)", page)  # nothing loaded from elsewhere
    table = page[page.index("<table>"):page.index("</table>")]
    assert all(f"<td>{name}</td>" in table for name in POLICIES)


def test_final_runs_are_nested_mlflow_runs_and_report_is_logged(report, search, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    rep, _ = report
    result, before = search
    client = MlflowClient(mlflow_server)
    parent = client.get_run(result.mlflow_run_id)
    finals = client.search_runs([parent.info.experiment_id], filter_string=(
        f"tags.mlflow.parentRunId = '{result.mlflow_run_id}' and tags.`autoaug.role` = 'final'"))
    twin = twin_of(result.best_policy, compared_policies(COMPARE))  # the searched policy may be one of them
    trained = [p for p in POLICIES if not (twin and p == SEARCHED)]
    seeds = report_seeds(result.record, 2)
    assert sorted((r.data.tags["autoaug.policy"], r.data.tags["autoaug.seed"]) for r in finals) == sorted(
        (p, str(s)) for p in trained for s in seeds)
    assert all(r.info.status == "FINISHED" and 0 <= r.data.metrics["test_acc"] <= 1 for r in finals)
    where = f"report/{rep.folder.name}"
    logged = {a.path for a in client.list_artifacts(result.mlflow_run_id, where)}
    assert {f"{where}/report.html", f"{where}/comparison.csv"} <= logged
    assert {r.data.tags["autoaug.report"] for r in finals} == {rep.folder.name}
    assert all(r.inputs.dataset_inputs[0].dataset.name == "fashion_mnist_small" for r in finals)  # the data it used
    assert {r.data.tags["mlflow.source.git.commit"] for r in finals} == {parent.data.tags["mlflow.source.git.commit"]}
    assert ray_processes() <= before
    cpu = client.get_metric_history(result.mlflow_run_id, "system/cpu_utilization_percentage")  # --system-metrics
    assert len(cpu) >= 2 and all(0 <= m.value <= 100 for m in cpu)


def test_the_searched_policys_first_model_is_logged_with_its_policy(report, search, mlflow_server: str) -> None:
    import mlflow
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    from autoaug.augment.policy import Policy
    from autoaug.data import load_dataset
    from autoaug.train.batches import to_float

    result, _ = search
    client = MlflowClient(mlflow_server)
    experiment = client.get_run(result.mlflow_run_id).info.experiment_id
    name = twin_of(result.best_policy, compared_policies(COMPARE)) or SEARCHED
    (run,) = client.search_runs([experiment], filter_string=(
        f"tags.mlflow.parentRunId = '{result.mlflow_run_id}' and tags.`autoaug.policy` = '{name}' "
        f"and tags.`autoaug.seed` = '{report_seeds(result.record, 1)[0]}'"))  # the first report seed
    mlflow.set_tracking_uri(mlflow_server)
    uri = f"runs:/{run.info.run_id}/model"
    assert mlflow.models.get_model_info(uri).signature is not None  # from the input example
    model = mlflow.pytorch.load_model(uri)  # torch.export's module: in eval mode, any batch size, no autoaug code
    r = result.record
    data = load_dataset(r.dataset, train_size=r.train_size, seed=r.seed, image_size=r.image_size)
    with torch.no_grad():
        acc = (model(to_float(data.test_x)).argmax(1) == data.test_y).float().mean().item()
    assert abs(acc - run.data.metrics["test_acc"]) < 0.03  # float32 here; trained and tested in bf16 on this CPU
    policy_file = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/policy.json"))
    assert Policy.load(policy_file).ops == result.best_policy.ops
    others = client.search_runs([experiment], filter_string=(
        f"tags.mlflow.parentRunId = '{result.mlflow_run_id}' and tags.`autoaug.role` = 'final'"))
    assert sum(bool(client.list_artifacts(o.info.run_id)) for o in others) == 1  # that run alone


def test_bad_search_argument(tmp_path: Path) -> None:
    with pytest.raises(AutoaugError, match="'nope' is neither a search folder nor an MLflow run id"):
        make_report("nope")
    unfinished = tmp_path / "s"
    unfinished.mkdir()
    SearchRecord("fashion_mnist_small", "convnet", trials=4, epochs=2, batch_size=64, budget="tiny",
                 seed=0).to_file(unfinished)  # as a search writes it when it starts
    with pytest.raises(AutoaugError, match=r"holds no finished trial .*autoaug search fashion_mnist_small --resume"):
        make_report(unfinished)
    with pytest.raises(AutoaugError, match=r"MLflow run .0{32}. does not exist"):
        make_report("0" * 32, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(AutoaugError, match="seeds 0 must be a positive integer"):
        make_report(unfinished, seeds=0)


def _record(policy: str, seed: int, acc: float) -> dict:
    return {"policy": policy, "seed": seed, "test": {"acc": acc, "precision": acc, "recall": acc, "f1": acc,
                                                     "loss": 1 - acc},
            "gap": 0.0, "corruption_acc": acc, "fgsm_acc": acc / 2, "train_seconds": 10.0, "aug_share": 0.1,
            "peak_memory_mb": 100.0, "cpu_util": 0.9}


def test_comparison_rows_on_fixed_numbers() -> None:
    """Differences [0.01, 0.02, 0.02] to `none`: interval [+0.0023, +0.0310] (t(0.975, 2) = 4.3027): better."""
    groups = {"none": [_record("none", s, a) for s, a in enumerate([0.90, 0.90, 0.91])],
              "a": [_record("a", s, a) for s, a in enumerate([0.91, 0.92, 0.93])],
              "b": [_record("b", s, a) for s, a in enumerate([0.95, 0.85, 0.91])]}
    rows = {r["policy"]: r for r in comparison_rows(groups)}
    assert rows["a"]["acc_verdict"] == "better"
    assert (rows["a"]["acc_diff"], rows["a"]["acc_ci_low"], rows["a"]["acc_ci_high"]) == pytest.approx(
        (0.016667, 0.002324, 0.031009), abs=1e-6)
    assert rows["b"]["acc_verdict"] == "no significant difference"
    assert rows["a"]["acc_mean"] == pytest.approx(0.92) and rows["a"]["acc_std"] == pytest.approx(0.01)
    assert "acc_diff" not in rows["none"] and rows["none"]["n"] == 3


def test_classification_metrics_by_hand() -> None:
    # true 0 0 1 1 2, predicted 0 1 1 1 0: precision (1/2, 2/3, 0), recall (1/2, 1, 0)
    target = torch.tensor([0, 0, 1, 1, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 0]), 3).float() * 5
    m = classification_metrics(logits, target)
    assert m["acc"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx((0.5 + 0.8) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert confusion_matrix(torch.tensor([2]), torch.tensor([2]), 3).sum() == 1


def test_markdown_and_html_from_the_same_blocks(tmp_path: Path) -> None:
    from autoaug.augment.presets import PRESETS
    from autoaug.report.plots import policy_bars

    img = policy_bars(PRESETS["baseline"], tmp_path / "p.png")
    blocks = [("h1", "T"), ("p", "a `code` and **bold** <x>"), ("table", (["a", "b"], [["1", "x|y"]])),
              ("img", (img, "cap"))]
    md = to_markdown(blocks)
    assert md.startswith("# T\n\na `code` and **bold** <x>\n\n| a | b |\n| --- | --- |\n| 1 | x\\|y |")
    assert "![cap](p.png)" in md
    page = to_html(blocks, "T")
    assert "<code>code</code> and <b>bold</b> &lt;x&gt;" in page and "<td>x|y</td>" in page
    assert page.count("data:image/png;base64,") == 1


def test_failed_runs_leave_partial_pairs_and_a_fixed_order() -> None:
    records = [_record("a", 2, 0.93), {"policy": "a", "seed": 1, "error": "TrainingDiverged: nan"},
               _record("none", 2, 0.90), _record("a", 0, 0.91), _record("none", 0, 0.90), _record("none", 1, 0.91)]
    groups = by_policy(records, ["none", "a", "b"])
    assert list(groups) == ["none", "a"] and [r["seed"] for r in groups["a"]] == [0, 2]
    _, body = main_table(comparison_rows(groups))
    assert body[0][:5] == ["none", "3", "0.9033 ± 0.0058", "—", "reference"]
    assert body[1][:4] == ["a", "2", "0.9200 ± 0.0141", "+0.0200 [-0.1071, +0.1471]"]


def test_compared_policies_put_none_first_and_name_files(tmp_path: Path) -> None:
    path = PRESETS["baseline"].save(tmp_path / "b.json")
    names = [p.name for p in compared_policies(["augnet", f"mine={path}", str(path), "none"])]
    assert names == ["none", "augnet", "mine", "baseline"]
    with pytest.raises(AutoaugError, match="'baseline' is given twice"):
        compared_policies(["baseline", str(path)])
    with pytest.raises(AutoaugError, match="unknown policy 'zigzag'"):
        compared_policies(["zigzag"])
    with pytest.raises(AutoaugError, match="must be letters"):
        compared_policies([f"a b={path}"])


def test_journal_keeps_finished_runs_and_skips_a_torn_line(tmp_path: Path) -> None:
    from autoaug.report.journal import read_journal

    path = tmp_path / ".runs-x.jsonl"
    assert read_journal(path) == []
    path.write_text(json.dumps({"policy": "none", "seed": 1, "elapsed": 3.0}) + "\n" + '{"policy": "base')
    assert read_journal(path) == [{"policy": "none", "seed": 1, "elapsed": 3.0}]


def test_a_searched_policy_equal_to_a_compared_one_is_trained_once(search, tmp_path: Path) -> None:
    import shutil

    from autoaug.report.finished import SEARCH_FILES

    result, _ = search
    copy = tmp_path / "search"  # without its mlflow.json: not logged beside the other report
    copy.mkdir()
    for name in SEARCH_FILES:
        shutil.copy2(result.output_dir / name, copy / name)
    PRESETS["none"].save(copy / "best_policy.json")  # the search found no augmentation
    lines: list[str] = []
    rep = make_report(copy, seeds=2, out=tmp_path / "reports", robust_size=50, num_cpus=2, cpus_per_trial=1,
                      compare=[], echo=lines.append)
    finals = [line for line in lines if re.search(r"\] final \d+/", line)]
    assert len(finals) == 2 and all("final" in f and "none seed" in f for f in finals)  # none only, once a seed
    assert any("the same as 'none'" in line for line in lines)
    rows = {r["policy"]: r for r in rep.rows}
    assert rows[SEARCHED]["acc_mean"] == rows["none"]["acc_mean"] and rows[SEARCHED]["acc_diff"] == 0
    text = (rep.folder / "report.md").read_text()
    assert "(the same policy as `none`: its runs are reused, not trained twice)" in text


def test_the_searched_policy_is_compared_with_the_best_compared_policy() -> None:
    from autoaug.report.prose import versus_best

    def runs(*accs: float) -> list[dict]:
        return [{"seed": seed, "test": {"acc": acc}} for seed, acc in zip((1, 2, 3), accs, strict=True)]

    groups = {"searched": runs(0.70, 0.71, 0.72), "none": runs(0.60, 0.61, 0.62), "cropflip": runs(0.69, 0.70, 0.70),
              "cropflip+randaugment": runs(0.65, 0.66, 0.64)}
    line = versus_best(groups)
    assert "`cropflip` (highest mean test accuracy)" in line and "+0.0133" in line and "(n = 3)" in line
    twin = {**groups, "searched": groups["cropflip"]}
    assert versus_best(twin) == " The searched policy is `cropflip`, the best of the compared policies."
    assert versus_best({"searched": groups["searched"], "none": groups["none"]}) == ""


def test_the_report_says_how_the_selection_scored_its_candidates() -> None:
    from autoaug.report.body import selection_how
    from autoaug.search import SearchRecord

    base = SearchRecord(dataset="d", model="m", trials=12, epochs=60, batch_size=64, budget="small", seed=0)
    now = selection_how(base.replace(points_seed=1, selection={"seeds": [1]}))
    assert "`none` and the standards trained on seed 1 in the search itself" in now and "again on seed 1;" in now
    before = selection_how(base.replace(selection={"seeds": [1, 2]}))
    assert "trained again on seeds 1, 2 (the search used seed 0)" in before
    earliest = selection_how(base.replace(selection={"seeds": [0, 1, 2]}))
    assert "trained again on seeds 1, 2 (the search used seed 0)" in earliest and "over the 3 seeds" in earliest


def test_the_selection_line_gives_an_interval_only_from_two_fresh_seeds() -> None:
    from autoaug.report.body import versus_none

    one = versus_none({"mean": 0.0782, "low": float("-inf"), "high": float("inf"), "n": 1,
                       "verdict": "no significant difference"}, "top 1")
    assert "+0.0782 over `none` on the one fresh seed" in one and "inf" not in one
    two = versus_none({"mean": 0.01, "low": 0.002, "high": 0.018, "n": 2, "verdict": "better"}, "top 1")
    assert "[95% CI +0.0020, +0.0180] (n = 2, paired by seed): better" in two
    assert versus_none(None, "cropflip") == "The picked trial is the `cropflip` point."


def test_the_final_training_counts_runs_a_twin_serves_once() -> None:
    from autoaug.report.prose import trained_runs

    records = [{"policy": p, "seed": s} for p in ("none", "trivialaugment") for s in (1, 2)]
    assert trained_runs(records) == "4 runs"
    twins = [{**r, "policy": SEARCHED, "same_as": "trivialaugment"} for r in records if r["policy"] == "trivialaugment"]
    assert trained_runs(records + twins) == "4 runs (the searched policy's 2 are `trivialaugment`'s)"
