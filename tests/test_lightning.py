import json

import pytest
import torch
from training_models import TinyVAE, tiny_data

L = pytest.importorskip("lightning")


class Module(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.vae = TinyVAE()
        self.seen = []

    def on_train_start(self):
        self.vae.frozen.eval()  # the user keeps this submodule frozen

    def training_step(self, batch, batch_idx):
        self.seen.append((self.training, self.vae.drop.training, self.vae.frozen.training))
        return self.vae.loss(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_callback_two_epochs(tmp_path):
    from collapse_diag.integrations.lightning import CollapseCallback
    from collapse_diag.runs.track import track

    out = tmp_path / "collapse.jsonl"
    callback = CollapseCallback(tiny_data(200), every_n_steps=3, out=out, model_attr="vae")
    module = Module()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tiny_data(128, seed=1)),
                                         batch_size=32)  # 4 steps per epoch
    logger = L.pytorch.loggers.CSVLogger(tmp_path / "logs", name="run")
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=logger,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[callback],
                        default_root_dir=tmp_path)
    trainer.fit(module, loader)
    steps = [json.loads(line)["step"] for line in out.read_text().splitlines()]
    assert steps == [0, 3, 6, 8]  # start, every 3 steps, and the final step 8
    # every training step ran in the modes it set, after each of the callback's measurements
    assert module.seen == [(True, True, False)] * 8
    # the scalars went to the trainer's logger, at the measured steps
    import csv

    with open(logger.log_dir + "/metrics.csv") as handle:
        logged = [r for r in csv.DictReader(handle) if r.get("collapse/kl")]
    assert [int(r["step"]) for r in logged] == steps
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [float(r["collapse/kl"]) for r in logged] == [
        pytest.approx(line["summary"]["kl"], rel=1e-6) for line in lines]
    result = track([out], tmp_path / "traj")
    assert [r["step"] for r in result.trajectory["rows"]] == [0, 3, 6, 8]
    assert len(result.trajectory["events"]["dimension_collapse_steps"]) == 3


def test_callback_rejects_a_missing_attribute(tmp_path):
    from collapse_diag.exceptions import InvalidParameterError
    from collapse_diag.integrations.lightning import CollapseCallback

    callback = CollapseCallback(tiny_data(50), out=None, model_attr="nope")
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, callbacks=[callback],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tiny_data(32)),
                                         batch_size=16)
    with pytest.raises(InvalidParameterError, match="model_attr"):
        trainer.fit(Module(), loader)
