"""Issue 25: Hugging Face save_pretrained folders (one model, or Optimus's encoder + decoder)."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("transformers")

from hf_models import joined, token_batch  # noqa: E402
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel  # noqa: E402

import collapse_diag  # noqa: E402
from collapse_diag import CheckpointError, load_checkpoint  # noqa: E402
from collapse_diag.examples.optimus import optimus_vae, tiny_configs  # noqa: E402
from collapse_diag.io.checkpoint_kinds import detect_adapter  # noqa: E402
from collapse_diag_cli.main import main  # noqa: E402

FAST = ["--per-dim-swap-examples", "8", "--prior-samples", "2", "--format", "json", "-q"]
LIB = {"per_dim_swap_examples": 8, "prior_samples": 2}
FACTORY = "collapse_diag.examples.optimus:optimus_vae"


def run(*args):
    return CliRunner().invoke(main, [os.fsdecode(a) if isinstance(a, Path) else str(a)
                                     for a in args])


def _optimus(folder: Path, step: int = 100, seed: int = 0):
    torch.manual_seed(seed)
    vae = optimus_vae(*tiny_configs()).eval()
    vae.encoder.save_pretrained(folder / f"checkpoint-encoder-{step}")
    vae.decoder.save_pretrained(folder / f"checkpoint-decoder-{step}")
    return vae


def test_optimus_folders_load_through_a_factory_and_give_the_cli_report(user_dir):
    vae = _optimus(user_dir / "out")
    assert detect_adapter(user_dir / "out") == "huggingface"
    assert sorted(os.listdir(user_dir / "out" / "checkpoint-decoder-100")) == [
        "config.json", "model.safetensors"]
    loaded = load_checkpoint(user_dir / "out", factory=FACTORY)
    assert loaded.adapter == "huggingface"
    assert loaded.config == {"encoder_config": "folder:checkpoint-encoder-100",
                             "decoder_config": "folder:checkpoint-decoder-100"}
    x = token_batch(40)
    z = torch.randn(40, 4)
    with torch.no_grad():  # the very weights saved: equal up to float32 rounding of a sum
        torch.testing.assert_close(loaded.model.encode(x), vae.encode(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(loaded.model.log_likelihood(x, z), vae.log_likelihood(x, z),
                                   rtol=1e-6, atol=1e-5)
    torch.save(x, user_dir / "x.pt")
    result = run("analyze", user_dir / "out", "--factory", FACTORY, "--data", user_dir / "x.pt",
                 "--out", user_dir / "r", *FAST)
    assert result.exit_code == 0, result.output
    cli = json.loads((user_dir / "r" / "report.json").read_text())
    lib = json.loads(json.dumps(collapse_diag.analyze(
        load_checkpoint(user_dir / "out", factory=FACTORY), x, seed=0, batch_size=64,
        **LIB).to_dict(), default=str))
    assert cli["checkpoint"]["adapter"] == "huggingface"
    for key in ("summary", "dimensions", "checkpoint", "n_examples"):  # same seed, same code
        assert cli[key] == lib[key], key


def test_standard_classes_are_built_from_config_json_and_tied_weights_may_be_absent(user_dir):
    torch.manual_seed(1)
    bert = BertModel(BertConfig(vocab_size=24, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=16))
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=24, n_embd=16, n_layer=1, n_head=2,
                                     n_positions=16))
    bert.save_pretrained(user_dir / "hf" / "encoder")
    gpt.save_pretrained(user_dir / "hf" / "decoder")
    # the .bin format for one of them: read with weights_only, never unpickling code
    state = dict(gpt.state_dict())
    state.pop("lm_head.weight")  # tied to transformer.wte.weight, as transformers saves it
    (user_dir / "hf" / "decoder" / "model.safetensors").unlink()
    torch.save(state, user_dir / "hf" / "decoder" / "pytorch_model.bin")
    shutil.copy(Path(__file__).with_name("hf_models.py"), user_dir / "hf_models.py")
    loaded = load_checkpoint(user_dir / "hf", factory="hf_models:joined")
    x = token_batch(12, max_len=8)
    reference = joined(bert.eval(), gpt.eval())
    z = torch.randn(12, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.log_likelihood(x, z),
                                   reference.log_likelihood(x, z), rtol=1e-6, atol=1e-5)
    decoder = loaded.model.decoder
    assert decoder.lm_head.weight.data_ptr() == decoder.transformer.wte.weight.data_ptr()


def test_code_in_the_folder_runs_only_with_trust_and_messages_name_the_fix(user_dir):
    _optimus(user_dir / "out")
    single = user_dir / "out" / "checkpoint-encoder-100"
    with pytest.raises(CheckpointError, match="sub-models.*--factory"):
        load_checkpoint(user_dir / "out")
    with pytest.raises(CheckpointError, match="'BertForLatentConnector' is not a transformers "
                                              "class.*_config"):
        load_checkpoint(single)
    config = json.loads((single / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.Evil"}
    (single / "config.json").write_text(json.dumps(config))
    (single / "modeling_evil.py").write_text("raise SystemExit('ran code from the folder')\n")
    with pytest.raises(CheckpointError, match="auto_map.*--trust-checkpoint"):
        load_checkpoint(single)
    result = run("analyze", single, "--out", user_dir / "r", *FAST)
    assert result.exit_code == 3 and "auto_map" in result.output
    _optimus(user_dir / "out", step=200)  # two steps side by side: which encoder?
    with pytest.raises(CheckpointError, match=r"2 training steps \(100, 200\).*"
                                              r"checkpoint-\*-200.*collapse-diag track"):
        load_checkpoint(user_dir / "out", factory=FACTORY)
    with pytest.raises(CheckpointError, match="does not apply"):
        load_checkpoint(user_dir / "out", factory=FACTORY, state_dict_prefix="model.")


def test_the_optimus_recipe_of_the_docs_runs_as_written(user_dir):
    from doc_recipes import recipe

    (user_dir / "optimus_factory.py").write_text(recipe("optimus"))
    vae = _optimus(user_dir / "optimus_out", step=31250)
    torch.save(token_batch(30), user_dir / "valid.pt")
    result = run("analyze", "optimus_out", "--factory", "optimus_factory:build", "--data",
                 "valid.pt", "--out", user_dir / "r", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads((user_dir / "r" / "report.json").read_text())
    assert report["checkpoint"]["factory"] == "optimus_factory:build"
    x = token_batch(30)
    loaded = load_checkpoint(user_dir / "optimus_out", factory="optimus_factory:build")
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.encode(x), vae.encode(x), rtol=0, atol=1e-6)


def test_track_reads_an_optimus_folder_of_several_steps_one_step_at_a_time(user_dir):
    # Optimus writes checkpoint-encoder-<step>/, checkpoint-decoder-<step>/ (save_pretrained)
    # and checkpoint-full-<step>/training.bin side by side for every step it saves.
    from collapse_diag.runs.track import checkpoint_sha256, checkpoint_step, find_checkpoints

    out = user_dir / "out"
    vaes = {step: _optimus(out, step=step, seed=step) for step in (100, 200)}
    for step in vaes:
        (out / f"checkpoint-full-{step}").mkdir()
        (out / f"checkpoint-full-{step}" / "training.bin").write_bytes(b"not read")
    found = find_checkpoints([out])
    assert found == [out / "checkpoint-*-100", out / "checkpoint-*-200"]
    assert find_checkpoints([out / "checkpoint-*"]) == found  # a glob: the same steps
    assert find_checkpoints([out / "checkpoint-*-200"]) == [found[1]]
    assert [checkpoint_step(p) for p in found] == [(100, "name"), (200, "name")]
    x = token_batch(30)
    z = torch.randn(30, 4)
    for path, (step, vae) in zip(found, vaes.items(), strict=True):
        loaded = load_checkpoint(path, factory=FACTORY)  # the glob: that step's two folders
        assert loaded.config == {"encoder_config": f"folder:checkpoint-encoder-{step}",
                                 "decoder_config": f"folder:checkpoint-decoder-{step}"}
        assert loaded.sha256 == checkpoint_sha256(path)
        with torch.no_grad():  # the very weights of that step (float32 rounding of a sum)
            torch.testing.assert_close(loaded.model.log_likelihood(x, z),
                                       vae.log_likelihood(x, z), rtol=1e-6, atol=1e-5)
    assert checkpoint_sha256(found[0]) != checkpoint_sha256(found[1])
    torch.save(x, user_dir / "x.pt")
    args = ("track", out, "--factory", FACTORY, "--data", user_dir / "x.pt", "--out",
            user_dir / "traj", "--per-dim-swap-examples", "8", "--prior-samples", "2",
            "--format", "json", "-q")
    result = run(*args)
    assert result.exit_code == 0, result.output
    traj = json.loads((user_dir / "traj" / "trajectory.json").read_text())
    assert [r["step"] for r in traj["rows"]] == [100, 200]
    assert [r["checkpoint"]["sha256"] for r in traj["rows"]] == [checkpoint_sha256(p)
                                                                  for p in found]
    one = run("analyze", out / "checkpoint-*-200", "--factory", FACTORY, "--data",
              user_dir / "x.pt", "--out", user_dir / "r200", *FAST)  # one step, by its glob
    assert one.exit_code == 0, one.output
    report = json.loads((user_dir / "r200" / "report.json").read_text())
    assert report["checkpoint"]["sha256"] == checkpoint_sha256(found[1])
    both = run("analyze", out, "--factory", FACTORY, "--data", user_dir / "x.pt", *FAST)
    assert both.exit_code == 3 and "2 training steps (100, 200)" in both.output
    expanded = run("analyze", out / "checkpoint-decoder-200", out / "checkpoint-encoder-200",
                   "--factory", FACTORY, *FAST)  # what a shell makes of the unquoted glob
    assert expanded.exit_code == 2
    assert f"quote the glob so that the shell does not expand it: collapse-diag analyze " \
           f"'{out / 'checkpoint-*-200'}'" in " ".join(expanded.output.split())
    compared = run("compare", out / "checkpoint-*-100", out / "checkpoint-*-200", "--factory",
                   FACTORY, "--data", user_dir / "x.pt", "--out", user_dir / "cmp", *FAST)
    assert compared.exit_code == 0, compared.output  # the step globs, analysed as checkpoints
    rows = json.loads((user_dir / "cmp" / "comparison.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["checkpoint-*-100", "checkpoint-*-200"]
    again = run(*args)  # the cache keys on the folders' files: nothing analysed again
    assert again.exit_code == 0 and json.loads(
        (user_dir / "traj" / "trajectory.json").read_text())["rows"] == traj["rows"]


def test_trainer_checkpoint_folders_are_steps_read_from_trainer_state(user_dir):
    # The Trainer's layout: run/checkpoint-<step>/ each one save_pretrained model with its
    # trainer_state.json; a model folder's own .pt files (optimizer, scheduler) are no
    # checkpoints.
    from collapse_diag.runs.track import checkpoint_step, find_checkpoints

    torch.manual_seed(2)
    bert = BertModel(tiny_configs()[0])
    run_dir = user_dir / "run"
    for step in (500, 1000):
        folder = run_dir / f"checkpoint-{step}"
        bert.save_pretrained(folder)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step + 1}))
        torch.save({"state": {}}, folder / "optimizer.pt")
    assert find_checkpoints([run_dir]) == [run_dir / "checkpoint-500",
                                           run_dir / "checkpoint-1000"]  # by their names' steps
    assert checkpoint_step(run_dir / "checkpoint-500") == (501, "trainer_state.json")
    assert find_checkpoints([run_dir / "checkpoint-500"]) == [run_dir / "checkpoint-500"]
    shutil.rmtree(run_dir / "checkpoint-1000")  # one Trainer folder left: it, not run/
    assert find_checkpoints([run_dir]) == [run_dir / "checkpoint-500"]
