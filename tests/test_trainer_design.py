"""The Trainer as the GAN algorithm: d_step/g_step against a hand-written Algorithm 1, the
Objective, callbacks and the training clock, run folders written only while training, and the
package layout."""

import ast
import dataclasses
import inspect
import json
import os
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import synthetic, tiny_config, tiny_trainer

import gankit
import gankit.lesson as lesson_mod
from gankit.checkpoints import CheckpointError
from gankit.config import ConfigError, make_config
from gankit.data import Dataset
from gankit.losses import Objective, gradient_penalty, objective_for
from gankit.runs import RunLocked
from gankit.train import Trainer

PACKAGE = Path(gankit.__file__).parent


def params(t):
    return [p.detach().clone() for p in (*t.G.parameters(), *t.D.parameters())]


# ----------------------------------------------------------------------------- the algorithm
def test_d_step_and_g_step_equal_a_hand_written_algorithm_1():
    """Goodfellow et al.'s Algorithm 1 written in plain torch gives the same weights and losses."""
    cfg = tiny_config()
    t, ref = tiny_trainer(cfg), tiny_trainer(cfg)
    ref.one_d_call = False  # the reference scores real and fake separately, as the paper writes it
    x, _ = next(t.data.epoch(0))
    torch.manual_seed(7)
    loss_d, d_real, _d_fake = t.d_step(x)
    d_grads = [p.grad.clone() for p in t.D.parameters()]
    loss_g = t.g_step(x)

    G, D, opt_g, opt_d = ref.G, ref.D, ref.opt_g, ref.opt_d
    torch.manual_seed(7)
    z = torch.randn(len(x), cfg.latent_dim)
    with torch.no_grad():
        x_fake = G(z)
    ref_real, ref_fake = D(x), D(x_fake)
    ref_loss_d = F.binary_cross_entropy_with_logits(
        ref_real, torch.ones_like(ref_real)
    ) + F.binary_cross_entropy_with_logits(ref_fake, torch.zeros_like(ref_fake))
    opt_d.zero_grad()
    ref_loss_d.backward()
    opt_d.step()
    z = torch.randn(len(x), cfg.latent_dim)
    out = D(G(z))
    ref_loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))  # -log D(G(z))
    opt_g.zero_grad()
    D.zero_grad()
    ref_loss_g.backward()
    opt_g.step()

    torch.testing.assert_close(loss_d, ref_loss_d.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loss_g, ref_loss_g.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(d_real, ref_real.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(params(t), params(ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the G step left D's gradients as the D step made them (D was frozen)
    assert all(torch.equal(g, p.grad) for g, p in zip(d_grads, t.D.parameters()))


def test_train_step_advances_step_and_runs_g_every_n_critic():
    t = tiny_trainer(tiny_config(n_critic=2))
    x, _ = next(t.data.epoch(0))
    calls = []
    g_step = t.g_step
    t.g_step = lambda *a: (calls.append(t.step), g_step(*a))[1]
    for _ in range(4):
        t.train_step(x)
    assert t.step == 4 and calls == [1, 3]


def test_d_step_and_g_step_fit_on_a_screen():
    for fn in (Trainer.d_step, Trainer.g_step):
        assert len(inspect.getsource(fn).splitlines()) <= 25


# ----------------------------------------------------------------------------- the objective
def test_objective_for_reads_the_config():
    bce = objective_for(tiny_config())
    assert bce.penalty is None and bce.clip_value == 0 and bce.as_probability is torch.sigmoid
    smooth = objective_for(tiny_config(real_label=0.9))
    zeros = torch.zeros(4)
    assert smooth.d_loss(zeros, zeros).item() == pytest.approx(2 * 0.6931472, abs=1e-6)
    assert (
        smooth.d_loss(torch.full((4,), 5.0), zeros).item()
        != bce.d_loss(torch.full((4,), 5.0), zeros).item()
    )
    gp = objective_for(make_config("wgan-gp-mnist", "smoke"))
    assert gp.penalty is gradient_penalty and gp.penalty_weight == 10.0
    assert gp.as_probability(torch.tensor([3.0])).item() == 3.0  # a critic's score shown as it is
    with pytest.raises(ConfigError, match="a penalty needs a weight > 0"):
        objective_for(tiny_config(), penalty=gradient_penalty)


def test_a_learners_penalty_is_applied_with_its_weight():
    calls = []

    def my_penalty(D, x_real, x_fake, y):
        calls.append(x_real.shape)
        return D(x_real).pow(2).mean()

    cfg = tiny_config()  # gp_weight 0: the old Trainer multiplied a given penalty by 0
    t = tiny_trainer(cfg)
    t.objective = objective_for(cfg, penalty=my_penalty, penalty_weight=3.0)
    plain = tiny_trainer(cfg)
    x, _ = next(t.data.epoch(0))
    torch.manual_seed(0)
    with torch.no_grad():
        expected_penalty = t.D(x).pow(2).mean()
    loss_d, _, _ = t.d_step(x)
    torch.manual_seed(0)
    plain_loss, _, _ = plain.d_step(x)
    assert calls == [x.shape]
    torch.testing.assert_close(loss_d, plain_loss + 3.0 * expected_penalty, rtol=1e-5, atol=1e-6)


def fake_data(monkeypatch, n=64):
    images, labels = synthetic(n)
    monkeypatch.setattr(
        lesson_mod, "load_dataset", lambda config, **kw: Dataset(images, labels, name="synthetic")
    )


def my_penalty(D, x_real, x_fake, y):
    return D(x_real).pow(2).mean()


def test_a_penalty_passes_through_train_or_load_and_must_be_passed_again_to_resume(
    tmp_path, monkeypatch
):
    fake_data(monkeypatch)
    cfg = tiny_config()
    kw = dict(runs=tmp_path, progress=False)
    a = lesson_mod.train_or_load(cfg, penalty=my_penalty, penalty_weight=0.5, **kw)
    assert a.objective.penalty is my_penalty and a.objective.penalty_weight == 0.5
    ckpt = a.run_dir / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError, match=r"another objective \(penalty: saved '.*my_penalty'"):
        Trainer.from_checkpoint(ckpt, run_dir=None)
    same = lesson_mod.setup(cfg, run_dir=None, penalty=my_penalty, penalty_weight=0.5, **kw)
    assert same.resume(ckpt) and same.step == a.step
    b = lesson_mod.train_or_load(cfg, load=True, penalty=my_penalty, penalty_weight=0.5, **kw)
    assert b.run_dir == a.run_dir and b.step == a.step  # found and loaded, not retrained


def test_setup_takes_config_fields_and_a_whole_objective(monkeypatch):
    fake_data(monkeypatch)
    from gankit.losses import d_loss_wasserstein, g_loss_minimax, g_loss_wasserstein

    t = lesson_mod.setup(tiny_config(), run_dir=None, progress=False, g_loss="minimax")
    assert t.config.g_loss == "minimax" and t.objective.g_loss is g_loss_minimax
    own = Objective(d_loss=d_loss_wasserstein, g_loss=g_loss_wasserstein)
    t = lesson_mod.setup(tiny_config(), run_dir=None, progress=False, objective=own)
    assert t.objective is own
    with pytest.raises(ConfigError, match="not both"):
        lesson_mod.setup(tiny_config(), run_dir=None, objective=own, penalty=my_penalty)


def test_objective_is_frozen_and_described_by_name():
    obj = objective_for(tiny_config(feature_matching=0.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.clip_value = 1.0
    d = obj.describe()
    assert (
        d["d_loss"] == "gankit.losses.d_loss_bce" and d["g_extra"] == "FeatureMatching(weight=0.5)"
    )
    assert isinstance(obj, Objective)


# ----------------------------------------------------------------------------- callbacks and clock
def test_callbacks_see_every_event_in_order_and_an_object_is_attached_whole():
    seen = []

    class Recorder:
        order = 5

        def on_fit_start(self, t):
            seen.append(("start", t.step))

        def on_epoch_end(self, t):
            seen.append(("epoch", t.epoch))

        def on_fit_end(self, t):
            seen.append(("end", t.status))

    t = tiny_trainer(tiny_config())
    t.add_callback(Recorder())
    t.add_callback("on_epoch_end", lambda tr: seen.append(("first", tr.epoch)))  # order 0: earlier
    t.fit()
    assert seen == [
        ("start", 0),
        ("first", 1),
        ("epoch", 1),
        ("first", 2),
        ("epoch", 2),
        ("end", "finished"),
    ]
    with pytest.raises(ValueError, match="has none of the methods"):
        t.add_callback(object())


def test_the_training_clock_stops_while_callbacks_run():
    t = tiny_trainer(tiny_config())

    def slow_evaluation(tr):
        time.sleep(0.6)
        tr.log_metrics({"fid": 2.0})  # stamped with the training time, not counting the sleep

    t.add_callback("on_epoch_end", slow_evaluation)
    start = time.perf_counter()
    h = t.fit()
    wall = time.perf_counter() - start
    assert wall > 1.2 and t.elapsed < wall - 1.1  # the two sleeps are not training time
    assert h["seconds"].iloc[-1] <= t.elapsed and t.evaluations[-1]["seconds"] < wall - 1.1
    t.log_metrics({"fid": 1.0})
    assert t.evaluations[-1]["seconds"] == t.elapsed


def test_progress_bar_uses_the_glossary_names(monkeypatch):
    postfixes = []

    class Bar:
        def __init__(self, **kw):
            pass

        def update(self, n=1):
            pass

        def set_postfix(self, values):
            postfixes.append(set(values))

        def close(self):
            pass

    monkeypatch.setattr("gankit.train.tqdm", Bar)
    tiny_trainer(tiny_config()).fit(1)
    assert postfixes and all(p == {"loss_d", "loss_g", "d_real", "d_fake"} for p in postfixes)


def test_progress_in_epochs_mode_prints_one_plain_line_per_epoch(monkeypatch, capsys):
    monkeypatch.setenv("GANKIT_PROGRESS", "epochs")
    t = tiny_trainer(tiny_config())
    t.progress = True  # the default of setup(); the environment picks plain lines
    t.fit()
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["mlp-mnist epoch 1/2", "mlp-mnist epoch 2/2"]
    assert "step 8, loss_d " in lines[1] and "d_fake" in lines[1]
    monkeypatch.setenv("GANKIT_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="use 'bar', 'epochs' or 'none'"):
        t.fit(3)


# ----------------------------------------------------------------------------- run folders
def test_a_trainer_without_run_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANKIT_RUNS", str(tmp_path / "runs"))
    t = tiny_trainer(tiny_config())
    t.fit()
    t.log_metrics({"fid": 1.0})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no run folder"):
        t.save_checkpoint()


def test_setup_and_train_or_load_agree_on_run_dir(tmp_path, monkeypatch):
    fake_data(monkeypatch)
    monkeypatch.setenv("GANKIT_RUNS", str(tmp_path / "runs"))
    cfg = tiny_config(epochs=1)
    assert lesson_mod.setup(cfg, run_dir=None, progress=False).run_dir is None
    assert lesson_mod.train_or_load(cfg, run_dir=None, progress=False).run_dir is None
    assert not (tmp_path / "runs").exists()
    auto = lesson_mod.train_or_load(cfg, progress=False)  # default: a new folder under the root
    assert auto.run_dir.parent == tmp_path / "runs" / "mlp-mnist"
    given = lesson_mod.train_or_load(cfg, run_dir=tmp_path / "mine", progress=False)
    assert (given.run_dir / "config.json").exists()


def test_from_checkpoint_does_not_rewrite_the_runs_config(tmp_path):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "r")
    t.fit(1)
    config_json = tmp_path / "r" / "config.json"
    config_json.write_text(config_json.read_text() + "\n")  # a byte the Trainer would not write
    before = config_json.read_bytes()
    loaded = Trainer.from_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt", progress=False)
    loaded.sample(4)
    assert loaded.run_dir == tmp_path / "r" and config_json.read_bytes() == before


def test_nothing_is_written_into_a_run_folder_before_its_lock_is_held(tmp_path):
    run = tmp_path / "r"
    t = tiny_trainer(tiny_config(), run_dir=run)
    (run / "config.json").write_text('{"someone": "else"}')
    (run / ".lock").write_text(f"1 {os.uname().nodename}")  # pid 1 is alive: another trainer
    with pytest.raises(RunLocked):
        t.fit(1)
    assert json.loads((run / "config.json").read_text()) == {"someone": "else"}
    assert not (run / "metrics.json").exists() and (run / ".lock").read_text().startswith("1 ")


# ----------------------------------------------------------------------------- setup and config
def test_setup_leaves_the_callers_config_alone(tmp_path, monkeypatch):
    images, _ = synthetic(32, 3, 32)
    genres = torch.zeros(32, 3)
    genres[:, 0] = 1
    monkeypatch.setattr(
        lesson_mod,
        "load_dataset",
        lambda config, **kw: Dataset(images, genres, label_names=["A", "B", "C"], name="toy"),
    )
    cfg = make_config("poster-cgan", "smoke", cond_dim=3, batch_size=8, extra={"note": 1})
    t = lesson_mod.setup(cfg, run_dir=None, progress=False)
    assert t.config.label_names == ("A", "B", "C")
    assert cfg.label_names == () and cfg.extra == {"note": 1}


def test_resolve_config_refuses_a_profile_it_cannot_apply():
    cfg = make_config("mlp-mnist", "smoke")
    assert lesson_mod.resolve_config(cfg, profile="smoke", epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="made for the 'smoke' profile"):
        lesson_mod.resolve_config(cfg, profile="cpu")


def test_settings_older_versions_kept_in_extra_become_fields():
    old = tiny_config().to_dict()
    del old["top_k"], old["genre_encoding"], old["label_names"]
    old["extra"] = {"top_k": 8, "encoding": "normalised", "label_names": ["Drama"], "mine": 1}
    cfg = type(tiny_config()).from_dict(old)
    assert (cfg.top_k, cfg.genre_encoding, cfg.label_names) == (8, "normalised", ("Drama",))
    assert cfg.extra == {"mine": 1}


# ----------------------------------------------------------------------------- layout
def _imports(path: Path):
    """(module, imported module, name, at top level) for every gankit-internal import in a file."""
    tree = ast.parse(path.read_text())
    mod = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    pkg = mod.rsplit(".", 1)[0] if path.name != "__init__.py" else mod
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
            target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                yield mod, target, alias.name, id(node) in top


def test_no_import_cycles_and_no_private_names_across_modules():
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts) for f in files}
    modules = {m.removesuffix(".__init__") for m in modules}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for f in files:
        for mod, target, name, _ in _imports(f):
            mod = mod.removesuffix(".__init__")
            sub = f"{target}.{name}"
            dep = sub if sub in modules else target
            if dep != mod and not dep.startswith(mod + "."):
                graph[mod].add(dep)
            if name.startswith("_") and name != "__version__":
                private.append(f"{mod} imports {name} from {target}")
    assert not private, private

    seen, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m) :] + [m]))
        if m in seen:
            return
        stack.append(m)
        for d in graph.get(m, ()):
            if not d.startswith(m + ".") and not m.startswith(d + "."):
                visit(d)
        stack.pop()
        seen.add(m)

    for m in sorted(graph):
        visit(m)
