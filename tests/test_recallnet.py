"""Recallnet (pipeline/models/recallnet.py): shapes of a tiny config, each reward of the critic moving a key the way
it should on a constructed case, the parts that train in each stage, determinism on CPU, the command line
(`--from`) and serving on both backends."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from newsrec.pipeline.models.contract import ModelConfigError
from newsrec.pipeline.models.meanpool import MeanPoolConfig, MeanPoolModel
from newsrec.pipeline.models.recallnet import Recallnet, RecallnetConfig
from support import D, NEWS_ENCODER, served_metrics_equal_offline, toy_batch


def recallnet(**changes) -> Recallnet:
    torch.manual_seed(0)
    config = RecallnetConfig(base_kind="meanpool", base_config=dataclasses.asdict(MeanPoolConfig(news=NEWS_ENCODER)),
                             dim=D, heads=2, evaluator_hidden=16, synthesizer_hidden=16, validator_hidden=8)
    return Recallnet(dataclasses.replace(config, **changes))


@pytest.mark.parametrize("evaluator", ["bi", "fc"])
def test_each_stage_gives_logits_for_every_candidate_and_its_own_loss(evaluator):
    model, batch = recallnet(evaluator=evaluator), toy_batch()
    for stage in model.stages:
        model.set_stage(stage)
        output = model(batch)
        assert output.logits.shape == batch.candidates.shape and output.loss.shape == ()
        assert torch.isfinite(output.loss)


def test_serving_vectors_are_the_bases_news_and_ranking_with_the_key_for_recall():
    model, batch = recallnet(), toy_batch()
    model.eval()
    base = MeanPoolModel(MeanPoolConfig(news=NEWS_ENCODER))
    base.load_state_dict(model.base.state_dict())
    base.eval()
    news = model.encode_news(batch.news)
    assert torch.equal(news, base.encode_news(batch.news))
    user = model.encode_user(news[batch.history], batch.history_mask, batch.user_index)
    expected = base.encode_user(news[batch.history], batch.history_mask, batch.user_index).ranking
    assert torch.equal(user.ranking, expected) and user.recall.shape == (3, D)
    assert torch.allclose(user.recall, model.key(news[batch.history], batch.history_mask))
    assert not torch.allclose(user.recall, user.ranking)


def test_bad_configs_are_refused_by_name():
    with pytest.raises(ModelConfigError, match="evaluator 'deep'"):
        recallnet(evaluator="deep")
    with pytest.raises(ModelConfigError, match="similarity 'l1'"):
        recallnet(similarity="l1")
    with pytest.raises(ModelConfigError, match="nothing ties the key to the user"):
        recallnet(evaluator_weight=0.0, referencer_weight=0.0)
    with pytest.raises(ModelConfigError, match="must not be negative"):
        recallnet(validator_weight=-1.0)


# ------------------------------------------------------------------ the critic's rewards, one at a time

def ascend(model: Recallnet, key: torch.Tensor, reward, steps: int = 60, lr: float = 0.05) -> torch.Tensor:
    """The key after gradient ascent on `reward(key)`; every parameter of the model is trainable here, and none
    may get a gradient from a reward (the critic is read, not trained, by the actor's objective)."""
    key = torch.nn.Parameter(key.clone())
    optimizer = torch.optim.SGD([key], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (-reward(key).sum()).backward()
        assert key.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.parameters())
        optimizer.step()
    return key.detach()


def evaluator_liking_feature_0(form: str) -> Recallnet:
    """An evaluator that, for every user, scores an item by relu(0.1 + item[0]) (hidden width = D)."""
    model = recallnet(evaluator=form, evaluator_hidden=D)
    with torch.no_grad():
        for parameter in model.evaluator.parameters():
            parameter.zero_()
        if form == "fc":
            first, second = model.evaluator.joint[0], model.evaluator.joint[2]
            first.weight[0, D] = 1.0  # hidden 0 = relu(item[0] + 0.1): columns D.. are the item's
            first.bias[0] = 0.1
            second.weight[0, 0] = 1.0
        else:  # W_e (FFN_1(item) ⊙ FFN_2(user)): FFN_1 keeps relu(item[0] + 0.1), FFN_2 is constant 1
            item, user = model.evaluator.item, model.evaluator.user
            item[0].weight[0, 0], item[0].bias[0], item[2].weight[0, 0] = 1.0, 0.1, 1.0
            user[2].bias.fill_(1.0)
            model.evaluator.weights.weight[0, 0] = 1.0
    return model


@pytest.mark.parametrize("form", ["bi", "fc"])
def test_the_evaluator_reward_moves_the_key_toward_what_the_evaluator_prefers(form):
    """A constructed evaluator that likes feature 0 of an item for every user: the key climbs along feature 0."""
    model = evaluator_liking_feature_0(form)
    user, key = torch.randn(4, D), torch.randn(4, D) * 0.1
    key[:, 0] = 0.0  # on the evaluator's slope
    before = model.rewards(user, key, torch.randn(4, D)).evaluation
    moved = ascend(model, key, lambda k: model.rewards(user, k, torch.zeros(4, D)).evaluation)
    after = model.rewards(user, moved, torch.randn(4, D)).evaluation
    assert (after > before).all() and (moved[:, 0] > key[:, 0] + 0.5).all()
    assert torch.allclose(moved[:, 1:], key[:, 1:])  # nothing else rewarded: nothing else moves


def test_the_referencer_pulls_the_key_toward_the_clicked_news():
    torch.manual_seed(1)
    key, clicked = torch.randn(4, D), torch.randn(4, D)
    cosine = torch.nn.functional.cosine_similarity
    for similarity in ("cosine", "inner"):
        model = recallnet(similarity=similarity)
        moved = ascend(model, key, lambda k: model.rewards(torch.zeros(4, D), k, clicked).reference, steps=200, lr=0.5)
        assert (cosine(moved, clicked) > cosine(key, clicked) + 0.1).all()


def test_the_validator_brings_a_stray_key_back_among_real_items():
    """Real news vectors around a center; a key far from them. The validator, trained to tell them apart, rewards
    the key for moving toward the real items (GAN-style alternation, as in training)."""
    torch.manual_seed(0)
    model = recallnet(validator_hidden=16)
    center = torch.full((D,), 2.0)
    real = center + 0.3 * torch.randn(256, D)
    key = torch.nn.Parameter(-center + 0.3 * torch.randn(4, D))
    start = (key.detach() - center).norm(dim=1)
    validator_opt = torch.optim.Adam(model.validator.parameters(), lr=1e-2)
    key_opt = torch.optim.SGD([key], lr=0.2)
    for _ in range(150):
        validator_opt.zero_grad()
        model.validator_loss(real, key.detach()).backward()
        validator_opt.step()
        key_opt.zero_grad()
        (-model.rewards(torch.zeros(4, D), key, torch.zeros(4, D)).validation.sum()).backward()
        key_opt.step()
    assert ((key.detach() - center).norm(dim=1) < 0.5 * start).all()


@pytest.mark.parametrize("similarity", ["cosine", "inner"])
def test_each_reward_moves_the_key_and_no_parameter_of_the_critic(similarity):
    model = recallnet(similarity=similarity)  # every parameter trainable: nothing frozen by a stage
    key = torch.randn(3, D, requires_grad=True)
    rewards = model.rewards(torch.randn(3, D), key, torch.randn(3, D))
    parameters = list(model.parameters())
    for name, reward in zip(rewards._fields, rewards):
        gradients = torch.autograd.grad(reward.sum(), [key] + parameters, retain_graph=True, allow_unused=True)
        assert gradients[0].abs().sum() > 0, name
        assert all(g is None for g in gradients[1:]), name


def test_the_actor_stage_trains_only_the_synthesizer_and_the_validator():
    model, batch = recallnet(), toy_batch()
    model.set_stage("recall")
    model.train()
    model(batch).loss.backward()
    with_grad = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum()}
    assert with_grad == {"synthesizer", "validator"}
    model.zero_grad()
    model.set_stage("evaluator")
    model(batch).loss.backward()
    with_grad = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum()}
    assert with_grad == {"user_encoder", "evaluator"}


def test_the_actor_loss_is_the_weighted_negative_reward_plus_the_validators():
    model, batch = recallnet(evaluator_weight=0.5, referencer_weight=2.0), toy_batch()
    model.set_stage("recall")
    model.eval()
    news = model.encode_news(batch.news)
    user = model.user_encoder(news[batch.history], batch.history_mask)
    key = model.synthesizer(user)
    rewards = model.rewards(user, key, news[batch.candidates[:, 0]])
    actor = -(0.5 * rewards.evaluation + rewards.validation + 2.0 * rewards.reference).mean()
    validator = model.validator_loss(news[batch.candidates[:, 1:].unique()], key.detach())
    loss = model(batch).loss
    assert loss.item() == pytest.approx((actor + validator).item(), rel=1e-6)
    # the validator's loss reaches the synthesizer through no path: its gradient there is the reward's alone
    synthesizer = list(model.synthesizer.parameters())
    for through_forward, alone in zip(torch.autograd.grad(loss, synthesizer), torch.autograd.grad(actor, synthesizer)):
        assert torch.allclose(through_forward, alone, atol=1e-7)


def test_a_user_without_history_gets_the_learned_vector_and_padding_changes_nothing():
    model, batch = recallnet(), toy_batch()
    model.eval()
    news = model.encode_news(batch.news)
    with torch.no_grad():
        model.user_encoder.empty_user.fill_(0.25)
    user = model.user_encoder(news[batch.history], batch.history_mask)
    assert torch.equal(user[2], model.user_encoder.empty_user)  # row 2 of the toy batch has no click
    history = batch.history.clone()
    history[0, 2:] = 7  # padding positions of row 0 point elsewhere
    assert torch.allclose(model.user_encoder(news[history], batch.history_mask), user)


@pytest.mark.gpu
def test_training_steps_under_cuda_bf16_autocast_are_finite():
    from newsrec.pipeline.models.contract import Batch
    from newsrec.pipeline.training import train_step

    device = torch.device("cuda")
    model, batch = recallnet().to(device), toy_batch()
    batch = Batch(batch.news.to(device), batch.candidates.to(device), batch.history.to(device),
                  batch.history_mask.to(device), batch.user_index.to(device))
    for stage in model.stages:
        model.set_stage(stage)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        assert np.isfinite(train_step(model, batch, optimizer))
        assert all(torch.isfinite(p).all() for p in model.parameters())


# ------------------------------------------------------------------ training, the command line, serving

@pytest.fixture(scope="module")
def keyed(tiny_demo: Path, trained: Path) -> Path:
    """A Recallnet trained on the session's UniRec through the command line (`--from`)."""
    from newsrec.cli import main

    out = trained.parent / "recallnet"  # beside the base: the LM vector cache is shared
    result = CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(out), "--model", "recallnet", "--from",
                                       str(trained), "--epochs", "1", "--recall-epochs", "1", "--batch-size", "64",
                                       "--max-impressions", "600", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "valid_evaluator_auc" in result.output and "recall epoch 1" in result.output
    return out


@pytest.mark.slow
def test_training_is_deterministic_on_cpu(tiny_demo: Path, trained: Path, keyed: Path):
    from newsrec.pipeline.checkpoint import load_checkpoint
    from newsrec.pipeline.training import TrainConfig, train

    again = trained.parent / "recallnet-again"
    train(tiny_demo, again, TrainConfig(model="recallnet", base=str(trained), epochs=1, recall_epochs=1, batch_size=64,
                                        max_impressions=600, threads=2), log=lambda _: None)
    first, second = load_checkpoint(keyed).model.state_dict(), load_checkpoint(again).model.state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_recallnet_needs_a_base_with_user_vectors(tiny_demo: Path, tmp_path: Path):
    from newsrec.pipeline.training import TrainConfig, TrainingError, train

    with pytest.raises(TrainingError, match="recallnet needs a base checkpoint"):
        train(tiny_demo, tmp_path / "k", TrainConfig(model="recallnet"), log=lambda _: None)


@pytest.mark.slow
def test_served_on_the_embedded_index_with_the_bases_ranking_and_its_key(tiny_demo: Path, trained: Path, keyed: Path,
                                                                       tmp_path: Path):
    from newsrec.feed.feeding import embed_corpus
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.cli import feed_main, main
    from newsrec.pipeline.mind import read_mind

    dataset = read_mind(tiny_demo)
    key, base = embed_corpus(dataset, keyed), embed_corpus(dataset, trained)
    assert np.array_equal(key.news_vectors, base.news_vectors) and np.array_equal(key.user_ranking, base.user_ranking)
    assert not np.allclose(key.user_recall, base.user_recall)
    index = tmp_path / "index"
    fed = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(keyed), "--index", str(index)])
    assert fed.exit_code == 0, fed.output
    user_id = dataset.users[0]
    served = LocalBackend(index).docs["user"][user_id]["recall_embedding"]["values"]
    assert np.allclose(served[:-1], key.user_recall[0], atol=1e-5) and served[-1] == 0.0
    result = CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--model", str(keyed), "--backend", "local",
                                       "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    served_metrics_equal_offline(result.output)


@pytest.mark.slow
def test_fed_to_vespa_unchanged(tiny_demo: Path, keyed: Path, tmp_path: Path):
    from newsrec.cli import feed_main, main
    from newsrec.contract_server import ContractServer
    from newsrec.pipeline.mind import read_mind

    dataset = read_mind(tiny_demo)
    with ContractServer() as server:
        fed = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(keyed), "--endpoint", server.url,
                                             "--state", str(tmp_path / "state")])
        assert fed.exit_code == 0, fed.output
        assert sum(1 for d in server.put_counts if ":user::" in d) == len(dataset.users)
        recommended = CliRunner().invoke(main, ["recommend", dataset.users[0], "--endpoint", server.url, "--json"])
        assert recommended.exit_code == 0, recommended.output
        assert json.loads(recommended.stdout)["hits"]
