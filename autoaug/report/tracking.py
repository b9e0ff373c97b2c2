"""MLflow tracking of a report: its final retrains as child runs of the search's parent run, the searched
policy's trained model (``mlflow.pytorch``) with its policy, and the report's files as the parent's artifacts."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoaug.augment.policy import Policy
from autoaug.files import atomic
from autoaug.search.provenance import code_tags
from autoaug.search.tracking import Runs, tolerant

if TYPE_CHECKING:
    import numpy as np
    import torch


class FinalTracker(Runs):
    """The reporter's final retrains as child runs of a search's parent run (``autoaug.role=final``, with
    ``autoaug.policy`` and ``autoaug.seed`` tags), and the report's files as artifacts of the parent."""

    def __init__(self, tracking_uri: str, parent_id: str, echo: Callable[[str], None] = print,
                 dataset: dict[str, Any] | None = None, example: np.ndarray | None = None) -> None:
        super().__init__(tracking_uri, echo)
        self.parent_id, self.dataset = parent_id, dataset  # dataset: the input every final run records
        self.example = example  # a logged model's input example: float images [2, C, H, W] in [0, 1]
        self.code = code_tags()  # the same for every final run: asked once
        self.experiment_id = self.client.get_run(parent_id).info.experiment_id

    def log_final(self, record: dict[str, Any], params: dict[str, Any], model: Path | None = None,
                  policy: Policy | None = None) -> str | None:
        """One run for one final record (see :func:`autoaug.report.finals.final_run`); FAILED with its error if it
        has one; with the trained ``model`` (a file of :func:`save_model`) and its ``policy`` where given.
        ``None`` when the server is lost."""
        run_id = self._log_final(record, params, model, policy)
        self.missed(f"{record['policy']} seed {record['seed']}")
        return run_id

    @tolerant
    def _log_final(self, record: dict[str, Any], params: dict[str, Any], model: Path | None,
                   policy: Policy | None) -> str:
        name, seed = record["policy"], record["seed"]
        run_id = self.client.create_run(self.experiment_id, run_name=f"final-{name}-seed{seed}", tags={
            "mlflow.parentRunId": self.parent_id, "autoaug.role": "final", "autoaug.policy": name,
            "autoaug.seed": str(seed), "autoaug.report": str(params.get("report", "")),
            "autoaug.journal": str(params.get("journal", "")), **self.code}).info.run_id
        if self.dataset is not None:
            self.log_dataset(run_id, self.dataset)
        self.log_params(run_id, {**params, "policy": name, "seed": seed})
        if "error" in record:
            self.fail(run_id, record["error"])
            return run_id
        for m in record["history"]:
            self.log_metrics(run_id, {k: v for k, v in m.items() if k != "epoch"}, step=m["epoch"])
        final = {f"test_{k}": v for k, v in record["test"].items()}
        final |= {k: record[k] for k in ("train_acc", "gap", "corruption_acc", "fgsm_acc", "train_seconds",
                                          "aug_share", "peak_memory_mb", "cpu_util")}
        self.log_metrics(run_id, final, step=len(record["history"]))
        if model is not None and policy is not None:
            self._log_model(run_id, model, policy)
        self.close(run_id, "FINISHED", "completed")
        return run_id

    @tolerant
    def logged(self, journal: str) -> set[tuple[str, int]]:
        """``(policy, seed)`` of the final runs logged from the report journal ``journal`` (its key)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{self.parent_id}' and tags.`autoaug.journal` = '{journal}'"))
        return {(r.data.tags["autoaug.policy"], int(r.data.tags["autoaug.seed"])) for r in runs}

    def log_report(self, folder: Path, artifact_path: str) -> None:
        """The report's files as artifacts of the parent run; after a lost server, say what is not in MLflow."""
        self._log_report(folder, artifact_path)
        self.say_missed(f"the report's files (in {folder})")

    @tolerant
    def _log_report(self, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.parent_id, str(folder), artifact_path=artifact_path)



    def _log_model(self, run_id: str, model: Path, policy: Policy) -> None:
        """The model in the file ``model`` as the MLflow model ``model`` of ``run_id`` (``mlflow.pytorch``, with an
        input example, hence a signature), its ``policy.json`` beside it and as an artifact of the run. Saved with
        ``torch.export`` (MLflow's ``pt2``: loads without autoaug, any batch size), or pickled where the model
        cannot be exported (loading it then needs autoaug)."""
        import importlib.metadata

        import mlflow
        import mlflow.pytorch
        import torch

        net = torch.load(model, weights_only=False)
        previous, bars = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        mlflow.set_tracking_uri(self.uri)
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # its signature check downloads the model
        try:
            with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "No complete tensor found")  # torch.export's, about GPU weights
                policy_file = str(policy.save(Path(tmp) / "policy.json"))
                needs = [f"torch=={importlib.metadata.version('torch')}"]  # torch.__version__ may name a build
                try:
                    mlflow.pytorch.log_model(net, name="model", input_example=self.example, extra_files=[policy_file],
                                             serialization_format="pt2", pip_requirements=needs)
                except Exception as e:  # torch.export cannot trace this model
                    self.echo(f"note: the model of {policy.name} cannot be exported ({type(e).__name__}); "
                              "it is logged pickled, and loading it needs autoaug")
                    needs.append(f"autoaug=={importlib.metadata.version('autoaug')}")
                    mlflow.pytorch.log_model(net, name="model", input_example=self.example, extra_files=[policy_file],
                                             serialization_format="pickle", pip_requirements=needs)
                mlflow.log_artifact(policy_file)
        finally:
            mlflow.set_tracking_uri(previous)
            if bars is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bars


def save_model(model: torch.nn.Module, path: Path) -> Path:
    """``model`` (float32, on the CPU, in eval mode) pickled whole to ``path``, written atomically."""
    import torch

    with atomic(path) as tmp:
        torch.save(model, tmp)
    return path
