"""Trainer assembly: loss scaling under gradient accumulation, length-bucketed batches, evaluation order, FLOPs,
thread count."""

import ctypes
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer, TrainerCallback

from conftest import VOCAB, sentiment_rows
from transformers import AutoModelForSequenceClassification

from hf_transfer.backbones import load_model_config, load_tokenizer, load_weights, resolve_model
from hf_transfer.batching import LengthBucketedSampler, length_sorted_batches, pad_batch
from hf_transfer.config import TrainConfig
from hf_transfer.errors import UserError
from hf_transfer.runtime import freed_memory_reused
from hf_transfer.training import (EVAL_BUDGET_FACTOR, DeferredRowsAdamW, LazyRowsAdamW, build_trainer, clip_gradients,
                                  model_flops, non_embedding_parameters, predict_logits, training_arguments)


@pytest.fixture(scope="module")
def no_dropout_bert(tmp_path_factory):
    """A tiny BERT without dropout: two runs that see the same batches must compute the same losses."""
    folder = tmp_path_factory.mktemp("no-dropout-bert")
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(folder)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    torch.manual_seed(0)
    BertForSequenceClassification(config).bert.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reviews(no_dropout_bert):
    tokenizer = load_tokenizer(resolve_model(str(no_dropout_bert)))
    rows = sentiment_rows(160, seed=1)
    dataset = Dataset.from_dict({"text": [r["review"] for r in rows], "labels": [int(r["sentiment"] == "pos") for r in rows]})
    return dataset.map(lambda b: tokenizer(b["text"], truncation=True, max_length=32), batched=True,
                       remove_columns=["text"])


def classifier(reference, tokenizer):
    """The reference checkpoint as a neg/pos classifier, loaded as runs load it (hf_transfer.backbones)."""
    config = load_model_config(reference, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
                               pad_token_id=tokenizer.pad_token_id)
    return load_weights(AutoModelForSequenceClassification, reference, config, pretrained=True)


def train_losses(model_folder, dataset, tmp_path, passes=None, layer_calls=None, **train):
    """(loss per optimiser step, gradient norm per step); `passes`, a list, receives the padded input_ids of
    every training forward pass, with the optimiser step it belongs to; `layer_calls`, a list, one entry per run of
    the first encoder layer's attention (forward, or its recomputation under gradient checkpointing)."""
    config = TrainConfig(**{"epochs": 1, "learning_rate": 1e-3, "precision": "fp32", "logging_steps": 1, "max_steps": 4,
                            "warmup_ratio": 0.0, "max_batch_tokens": None, **train})
    reference = resolve_model(str(model_folder))
    tokenizer = load_tokenizer(reference)
    torch.manual_seed(0)
    model = classifier(reference, tokenizer)
    args = training_arguments(config, str(tmp_path / "trainer"), "fp32", False)
    trainer = build_trainer(model, args, tokenizer, dataset, None, [])
    if passes is not None:
        model.register_forward_pre_hook(lambda module, _, inputs: passes.append(
            (trainer.state.global_step, inputs["input_ids"].clone())) if module.training else None, with_kwargs=True)
    if layer_calls is not None:
        model.bert.encoder.layer[0].attention.register_forward_hook(lambda *_: layer_calls.append(1))
    trainer.train()
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    return [entry["loss"] for entry in history], [entry["grad_norm"] for entry in history]


def test_gradient_accumulation_gives_the_loss_curve_of_the_full_batch(no_dropout_bert, reviews, tmp_path):
    # Trainer divides each micro-batch loss by the accumulation steps only for models that do not take **kwargs
    # in forward; load_weights marks ours so. Unscaled, accumulating 4 micro-batches reports 4x the loss.
    full_loss, full_norm = train_losses(no_dropout_bert, reviews, tmp_path / "full", batch_size=32)
    accumulated_loss, accumulated_norm = train_losses(no_dropout_bert, reviews, tmp_path / "accumulated", batch_size=8,
                                                      gradient_accumulation_steps=4)
    assert len(full_loss) == 4
    assert accumulated_loss == pytest.approx(full_loss, rel=1e-4)
    assert accumulated_norm == pytest.approx(full_norm, rel=1e-3)  # same gradients, so the same optimiser steps
    assert len(set(full_loss)) == 4, "each step sees new examples with updated weights"


def test_token_budget_keeps_each_optimiser_steps_examples_and_the_loss_curve_of_whole_batches(
        no_dropout_bert, reviews, tmp_path):
    whole, budgeted = [], []
    whole_loss, whole_norm = train_losses(no_dropout_bert, reviews, tmp_path / "whole", passes=whole, batch_size=32)
    budget_loss, budget_norm = train_losses(no_dropout_bert, reviews, tmp_path / "budget", passes=budgeted,
                                            batch_size=32, max_batch_tokens=40)
    assert len(whole) == 4 and len(budgeted) > 4 * 3, "every batch of 32 ran as several micro-batches"
    assert all(ids.numel() <= 40 for _, ids in budgeted)

    def examples_per_step(passes):
        steps = {}
        for step, ids in passes:
            steps.setdefault(step, []).extend(tuple(t for t in row.tolist() if t != 0) for row in ids)
        return {step: sorted(rows) for step, rows in steps.items()}

    assert examples_per_step(budgeted) == examples_per_step(whole)
    assert budget_loss == pytest.approx(whole_loss, rel=1e-4)
    assert budget_norm == pytest.approx(whole_norm, rel=1e-3)
    assert len(set(whole_loss)) == 4


def test_gradient_checkpointing_leaves_the_loss_curve_unchanged(no_dropout_bert, reviews, tmp_path):
    plain_calls, checkpointed_calls = [], []
    plain = train_losses(no_dropout_bert, reviews, tmp_path / "plain", layer_calls=plain_calls, batch_size=16)
    checkpointed = train_losses(no_dropout_bert, reviews, tmp_path / "checkpointed", layer_calls=checkpointed_calls,
                                batch_size=16, gradient_checkpointing=True)
    assert len(plain_calls) == 4 and len(checkpointed_calls) == 8, "each layer ran again in the backward pass"
    assert checkpointed[0] == pytest.approx(plain[0], rel=1e-4)
    assert checkpointed[1] == pytest.approx(plain[1], rel=1e-3)


def test_lazy_rows_adamw_is_adamw_on_the_rows_with_a_gradient_and_leaves_the_others_alone():
    torch.manual_seed(0)
    embedding, dense = torch.randn(10, 4), torch.randn(3)
    lazy_copy, dense_copy = embedding.clone().requires_grad_(), dense.clone().requires_grad_()
    embedding.requires_grad_(), dense.requires_grad_()
    settings = {"lr": 0.1, "weight_decay": 0.1, "betas": (0.9, 0.99)}
    reference = torch.optim.AdamW([embedding, dense], **settings)
    optimizer = LazyRowsAdamW.from_adamw(torch.optim.AdamW([lazy_copy, dense_copy], fused=True, **settings),
                                         lazy=[lazy_copy])
    assert [g.get("lazy_rows", False) for g in optimizer.param_groups] == [False, True]
    touched = [0, 3, 7]
    for step in range(3):
        grad = torch.zeros(10, 4)
        grad[touched] = torch.randn(3, 4)
        dense_grad = torch.randn(3)
        for weights, vector in ((embedding, dense), (lazy_copy, dense_copy)):
            weights.grad, vector.grad = grad.clone(), dense_grad.clone()
        reference.step()
        optimizer.step()
        torch.testing.assert_close(lazy_copy[touched], embedding[touched])  # AdamW's update on the batch's rows
        torch.testing.assert_close(dense_copy, dense)
    untouched = [i for i in range(10) if i not in touched]
    assert not torch.equal(embedding[untouched], lazy_copy[untouched]), "dense AdamW decays every row"
    torch.manual_seed(0)
    assert torch.equal(lazy_copy[untouched], torch.randn(10, 4)[untouched]), "the lazy rows kept their weights"
    assert optimizer.state[lazy_copy]["exp_avg"][untouched].abs().sum() == 0
    assert set(optimizer.state_dict()["state"][1]) == set(reference.state_dict()["state"][0])  # AdamW's state keys


def test_lazy_rows_from_the_embeddings_token_ids_are_the_rows_with_a_gradient():
    torch.manual_seed(0)
    tracked, scanned = torch.nn.Embedding(50, 4), torch.nn.Embedding(50, 4)
    scanned.load_state_dict(tracked.state_dict())
    optimizers = [LazyRowsAdamW.from_adamw(torch.optim.AdamW(module.parameters(), lr=0.1), [module.weight], embeddings)
                  for module, embeddings in ((tracked, tracked), (scanned, None))]
    for step in range(3):
        ids = torch.randint(0, 50, (2, 6))
        for module, optimizer in zip((tracked, scanned), optimizers):
            for micro_batch in ids:  # accumulated micro-batches: the rows of both
                module(micro_batch).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        assert torch.equal(tracked.weight, scanned.weight)
    assert optimizers[0]._seen_ids["ids"] == [], "the ids are forgotten after each step"


def test_clip_gradients_of_a_sparse_gradient_is_torchs_clipping_of_the_dense_one():
    torch.manual_seed(0)
    dense, sparse = torch.nn.Embedding(20, 4), torch.nn.Embedding(20, 4, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    dense_head = torch.randn(4, 3, requires_grad=True)
    sparse_head = dense_head.detach().clone().requires_grad_()
    ids = torch.tensor([[1, 5, 5, 9], [5, 2, 1, 1]])  # repeated rows: an uncoalesced sparse gradient
    for module, head in ((dense, dense_head), (sparse, sparse_head)):
        (module(ids) @ head).square().sum().backward()
    assert sparse.weight.grad.is_sparse
    measured = clip_gradients([sparse.weight, sparse_head], float("inf"))  # max_norm=inf: the norm, no scaling
    dense_norm = torch.nn.utils.clip_grad_norm_([dense.weight, dense_head], 0.5)
    sparse_norm = clip_gradients([sparse.weight, sparse_head], 0.5)
    assert float(measured) == pytest.approx(float(dense_norm))
    assert float(sparse_norm) == pytest.approx(float(dense_norm))
    assert float(dense_norm) > 0.5, "the gradients were scaled"
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)
    torch.testing.assert_close(sparse_head.grad, dense_head.grad)


def test_lazy_rows_from_a_sparse_gradient_are_the_rows_of_the_dense_one():
    torch.manual_seed(0)
    dense, sparse = torch.nn.Embedding(50, 4), torch.nn.Embedding(50, 4, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    optimizers = [LazyRowsAdamW.from_adamw(torch.optim.AdamW(module.parameters(), lr=0.1, weight_decay=0.1),
                                           [module.weight], module) for module in (dense, sparse)]
    for step in range(3):
        ids = torch.randint(0, 50, (2, 6))
        for module, optimizer in zip((dense, sparse), optimizers):
            for micro_batch in ids:  # accumulated micro-batches: a sparse gradient with repeated rows
                module(micro_batch).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        torch.testing.assert_close(sparse.weight, dense.weight)


def test_trainer_with_lazy_embedding_updates_moves_only_the_embeddings_of_seen_tokens(no_dropout_bert, reviews, tmp_path):
    reference = resolve_model(str(no_dropout_bert))
    tokenizer = load_tokenizer(reference)
    model = classifier(reference, tokenizer)
    before = model.get_input_embeddings().weight.detach().clone()
    config = TrainConfig(max_steps=2, learning_rate=1e-2, precision="fp32", embedding_updates="lazy",
                         checkpoint_steps=None)
    trainer = build_trainer(model, training_arguments(config, str(tmp_path), "fp32", False), tokenizer, reviews, None, [])
    trainer.train()
    assert isinstance(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer,
                      LazyRowsAdamW)
    assert model.get_input_embeddings().sparse, "one process: a row-sparse embedding gradient"
    assert all(entry["grad_norm"] > 0 for entry in trainer.state.log_history if "grad_norm" in entry)
    moved = (model.get_input_embeddings().weight.detach() != before).any(dim=1)
    seen = torch.zeros_like(moved)
    seen[torch.tensor(sorted({t for ids in reviews["input_ids"] for t in ids}))] = True
    assert moved.any() and not (moved & ~seen).any(), "rows of tokens that never occur keep their weights"


def _embedding_and_head(sparse: bool, dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Embedding(300, 8, sparse=sparse).to(dtype), torch.nn.Linear(8, 2).to(dtype)


def _adamw(embedding, head, fused=True):
    groups = [{"params": [embedding.weight, head.weight], "weight_decay": 0.1},
              {"params": [head.bias], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-2, fused=fused)


def _schedule(optimizer):
    """Linear warmup and decay: every step has its own learning rate."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10) * (1 - step / 80))


def test_deferred_rows_adamw_gives_dense_adamws_weights_and_moments_wherever_they_are_read():
    (dense, dense_head), (deferred, deferred_head) = _embedding_and_head(False), _embedding_and_head(True)
    exact, exact_head = _embedding_and_head(False, torch.float64)  # dense AdamW in float64: the reference
    initial = dense.weight.detach().clone()
    exact_optimizer, dense_optimizer = _adamw(exact, exact_head, fused=False), _adamw(dense, dense_head)
    optimizer = DeferredRowsAdamW.from_adamw(_adamw(deferred, deferred_head), deferred)
    runs = [(exact, exact_head, exact_optimizer), (dense, dense_head, dense_optimizer),
            (deferred, deferred_head, optimizer)]
    schedules = [_schedule(run[2]) for run in runs]
    generator = torch.Generator().manual_seed(1)
    for step in range(60):
        ids = (torch.rand(4, 6, generator=generator) ** 4 * 280).long()  # skewed: most rows go many steps unread
        labels = torch.randint(0, 2, (4,), generator=generator)
        looked_up = []
        for (embedding, head, opt), schedule in zip(runs, schedules):
            vectors = embedding(ids)
            looked_up.append(vectors.detach().double())
            torch.nn.functional.cross_entropy(head(vectors.mean(1)), labels).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            schedule.step()
        # the forward reads dense AdamW's rows (fused float32 AdamW rounds off as much from the float64 reference)
        torch.testing.assert_close(looked_up[2], looked_up[0], atol=1e-4, rtol=1e-4)
        if step == 30:
            behind = optimizer._last_step < step + 1
            assert behind[280:].all() and not torch.allclose(deferred.weight[280:], dense.weight[280:]), \
                "rows 280+ were never read: their steps are still deferred"
            torch.testing.assert_close(deferred.state_dict()["weight"].double(), exact.weight.detach(),
                                       atol=1e-4, rtol=1e-4)
    saved = optimizer.state_dict()  # every deferred step applied: dense AdamW's state
    error, dense_error = ((weight.detach().double() - exact.weight.detach()).abs().max()
                          for weight in (deferred.weight, dense.weight))
    assert error < 2 * dense_error, "about as close to exact AdamW as torch's fused float32 AdamW"
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(optimizer.state[deferred.weight][key].double(),
                                   exact_optimizer.state[exact.weight][key], atol=1e-7, rtol=1e-4)
    assert set(saved["state"][1]) == set(dense_optimizer.state_dict()["state"][0])  # AdamW's keys
    assert not torch.allclose(dense.weight[280:], initial[280:]), "weight decay moved the rows no text used"
    # A checkpoint's state loads into a fresh optimizer, which goes on as dense AdamW does.
    resumed = DeferredRowsAdamW.from_adamw(_adamw(deferred, deferred_head), deferred)
    resumed.load_state_dict(saved)
    ids = torch.tensor([[1, 2, 3]])
    for embedding, head, opt in ((dense, dense_head, dense_optimizer), (deferred, deferred_head, resumed)):
        head(embedding(ids).mean(1)).sum().backward()
        opt.step()
    torch.testing.assert_close(resumed.state_dict()["state"][1]["exp_avg"],
                               dense_optimizer.state[dense.weight]["exp_avg"], atol=1e-7, rtol=1e-4)
    torch.testing.assert_close(deferred.weight.detach(), dense.weight.detach(), atol=1e-4, rtol=1e-4)


def test_weights_loaded_into_the_embedding_are_kept_as_loaded():
    embedding, head = _embedding_and_head(True)
    optimizer = DeferredRowsAdamW.from_adamw(_adamw(embedding, head), embedding)
    best = {key: value.clone() for key, value in embedding.state_dict().items()}  # Trainer's best checkpoint, say
    for _ in range(3):
        head(embedding(torch.tensor([[1, 2]])).mean(1)).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    embedding.load_state_dict(best)
    optimizer.catch_up()
    assert torch.equal(embedding.weight, best["weight"]), "the loaded weights replace the deferred steps"


def test_a_model_that_reads_the_embedding_weight_around_its_forward_is_stopped_not_trained_on_stale_rows():
    embedding, head = _embedding_and_head(True)
    optimizer = DeferredRowsAdamW.from_adamw(_adamw(embedding, head), embedding)
    head(embedding(input=torch.tensor([[1, 2]])).mean(1)).sum().backward()  # through the module (keyword input too)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    head(torch.nn.functional.embedding(torch.tensor([[3, 4]]), embedding.weight).mean(1)).sum().backward()
    with pytest.raises(UserError, match="2 word-embedding rows got a gradient without passing through the embedding"):
        optimizer.step()


def test_trainer_defers_embedding_steps_and_ends_with_dense_adamws_weights(no_dropout_bert, reviews, tmp_path):
    reference = resolve_model(str(no_dropout_bert))
    tokenizer = load_tokenizer(reference)
    weights = {}
    for mode in ("deferred", "dense"):
        torch.manual_seed(0)
        model = classifier(reference, tokenizer)
        config = TrainConfig(max_steps=6, learning_rate=1e-2, precision="fp32", embedding_updates=mode,
                             checkpoint_steps=None, max_batch_tokens=None)
        trainer = build_trainer(model, training_arguments(config, str(tmp_path / mode), "fp32", False), tokenizer,
                                reviews, None, [])
        trainer.train()
        optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        assert isinstance(optimizer, DeferredRowsAdamW) == (mode == "deferred")
        assert model.get_input_embeddings().sparse == (mode == "deferred"), "one process: a row-sparse gradient"
        weights[mode] = {name: p.detach().clone() for name, p in model.named_parameters()}  # read after train()
    for name, value in weights["dense"].items():
        torch.testing.assert_close(weights["deferred"][name], value, atol=1e-5, rtol=1e-4, msg=name)


def test_a_model_without_input_embeddings_trains_with_the_default_embedding_updates(tmp_path):
    from transformers import PretrainedConfig, PreTrainedModel

    class HeadConfig(PretrainedConfig):
        model_type = "head-on-features"

    class Head(PreTrainedModel):  # transformers raises NotImplementedError for its get_input_embeddings
        config_class = HeadConfig

        def __init__(self, config):
            super().__init__(config)
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, features, labels):
            return {"loss": torch.nn.functional.cross_entropy(self.linear(features), labels)}

    torch.manual_seed(0)
    data = Dataset.from_dict({"features": torch.randn(16, 4).tolist(), "labels": [0, 1] * 8})
    config = TrainConfig(max_steps=2, learning_rate=1e-2, precision="fp32", checkpoint_steps=None,
                         max_batch_tokens=None, group_by_length=False)
    model = Head(HeadConfig())
    before = model.linear.weight.detach().clone()
    def collate(rows):
        return {key: torch.tensor([row[key] for row in rows]) for key in rows[0]}

    trainer = build_trainer(model, training_arguments(config, str(tmp_path), "fp32", False), None, data, None, [],
                            data_collator=collate)
    trainer.train()
    assert not torch.equal(model.linear.weight, before)


def test_the_best_checkpoint_trainer_loads_at_the_end_is_kept_as_saved(no_dropout_bert, reviews, tmp_path):
    import dataclasses

    import safetensors.torch

    reference = resolve_model(str(no_dropout_bert))
    tokenizer = load_tokenizer(reference)
    model = classifier(reference, tokenizer)
    config = TrainConfig(max_steps=5, learning_rate=1e-2, precision="fp32", checkpoint_steps=None,
                         max_batch_tokens=None)
    # the worst evaluation loss counts as best: an early checkpoint, loaded over the trained weights at the end
    args = dataclasses.replace(training_arguments(config, str(tmp_path), "fp32", False), eval_strategy="steps",
                               eval_steps=2, save_strategy="steps", save_steps=2, load_best_model_at_end=True,
                               metric_for_best_model="eval_loss", greater_is_better=True)
    trainer = build_trainer(model, args, tokenizer, reviews, reviews.select(range(16)), [])
    trainer.train()
    assert isinstance(trainer.optimizer.optimizer, DeferredRowsAdamW) and trainer.state.best_model_checkpoint
    saved = safetensors.torch.load_file(os.path.join(trainer.state.best_model_checkpoint, "model.safetensors"))
    name = next(key for key in saved if key.endswith("word_embeddings.weight"))
    assert torch.equal(model.get_input_embeddings().weight.detach(), saved[name])


def test_length_bucketed_sampler_covers_every_example_once_in_similar_length_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=1000)
    sampler = LengthBucketedSampler(lengths, global_batch_size=32, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    batches = [order[i:i + 32] for i in range(0, 1000, 32)]

    def padding_fraction(batches):
        padded = sum(len(b) * max(lengths[b]) for b in batches)
        return 1 - sum(lengths[order]) / padded

    shuffled = [list(rng.permutation(1000)[i:i + 32]) for i in range(0, 1000, 32)]
    assert padding_fraction(batches) < 0.05 < 0.3 < padding_fraction(shuffled)
    assert list(sampler) == order, "the order depends on seed and epoch only: every process computes the same"
    sampler.set_epoch(1)
    assert list(sampler) != order, "each epoch gets a new order"
    by_length = [max(lengths[b]) for b in batches[:-1]]
    assert by_length != sorted(by_length) and by_length != sorted(by_length, reverse=True), "batch order is shuffled"


@pytest.mark.parametrize("max_batch_tokens", [None, 8])
def test_predict_logits_returns_rows_in_dataset_order(no_dropout_bert, reviews, tmp_path, max_batch_tokens):
    reference = resolve_model(str(no_dropout_bert))
    tokenizer = load_tokenizer(reference)
    model = classifier(reference, tokenizer).eval()
    config = TrainConfig(eval_batch_size=16, group_by_length=True, max_batch_tokens=max_batch_tokens)
    trainer = build_trainer(model, training_arguments(config, str(tmp_path), "fp32", False), tokenizer, reviews, None, [])
    shapes = []
    model.register_forward_pre_hook(lambda _, args, inputs: shapes.append(inputs["input_ids"].shape), with_kwargs=True)
    logits = predict_logits(trainer, reviews)
    if max_batch_tokens:  # evaluation batches within EVAL_BUDGET_FACTOR x the training budget
        assert len(shapes) > len(reviews) / 16
        assert all(rows * length <= EVAL_BUDGET_FACTOR * 8 for rows, length in shapes)
    else:
        assert [rows for rows, _ in shapes] == [16] * 10
    with torch.no_grad():
        expected = [model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in reviews["input_ids"]]
    np.testing.assert_allclose(logits, np.stack(expected), atol=1e-5)


def test_inference_batches_respect_the_token_budget_and_pad_like_the_collator():
    lengths = [3, 50, 7, 7, 20, 1, 64]
    batches = length_sorted_batches(lengths, max_tokens=64)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert all(len(b) * max(lengths[i] for i in b) <= 64 for b in batches)
    columns = {"input_ids": [[5, 6], [7], [8, 9, 10]], "attention_mask": [[1, 1], [1], [1, 1, 1]]}
    batch = pad_batch(columns, [1, 2], pad_id=0)
    assert batch["input_ids"].tolist() == [[7, 0, 0], [8, 9, 10]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]


def test_model_flops_follow_six_n_plus_attention():
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = BertForSequenceClassification(config)
    n = non_embedding_parameters(model)
    embeddings = sum(p.numel() for p in model.bert.embeddings.parameters()) - sum(
        p.numel() for p in model.bert.embeddings.LayerNorm.parameters())
    assert n == sum(p.numel() for p in model.parameters()) - embeddings
    assert model_flops(model, [10, 20]) == pytest.approx(6 * n * 30 + 12 * 2 * 32 * (100 + 400))
    assert model_flops(model, [10], training=False) == pytest.approx(2 * n * 10 + 4 * 2 * 32 * 100)


THREADS_PROBE = "import torch; from hf_transfer.runtime import set_threads; set_threads({}); print(torch.get_num_threads())"


@pytest.mark.parametrize("requested, launched_by_accelerate, expected", [
    (None, True, "cores"),  # accelerate launch's OMP_NUM_THREADS=1 is replaced by the process's share of the cores
    (None, False, 1),  # a user's own OMP_NUM_THREADS=1 stands
    (1, True, 1),  # so does train.threads
])
def test_set_threads_undoes_accelerate_launchs_single_thread_default(requested, launched_by_accelerate, expected):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    if launched_by_accelerate:
        env["ACCELERATE_MIXED_PRECISION"] = "no"  # set by `accelerate launch` in every process it starts
    done = subprocess.run([sys.executable, "-c", THREADS_PROBE.format(requested)], env=env, capture_output=True,
                          text=True, check=True)
    cores = len(os.sched_getaffinity(0))
    assert int(done.stdout.split()[-1]) == (cores if expected == "cores" else expected)


GLIBC = platform.libc_ver()[0] == "glibc"
BIG = 64 * 2**20  # bytes: above glibc's largest mmap threshold (32 MiB), like MiniLM's 47 MB embedding gradient


class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h)
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def mapped_bytes() -> int:
    """Bytes glibc's malloc holds in blocks mapped apart from its heap (mallinfo2's hblkhd)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblkhd


def big_tensor_is_mapped() -> bool:
    before = mapped_bytes()
    block = torch.empty(BIG // 4)
    grew = mapped_bytes() - before >= BIG
    del block
    return grew


REUSE_PROBE = """
import torch
from hf_transfer.runtime import freed_memory_reused

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

with freed_memory_reused():
    block = torch.ones({numel})
    del block
    kept = resident_mb()
print(kept - resident_mb())
"""

# In a fresh process glibc's mmap threshold is still 128 KiB; after a block it must not stay there for good.
MEDIUM_BLOCK_PROBE = """
import sys
sys.path.insert(0, {tests!r})
import torch
from test_training import mapped_bytes
from hf_transfer.runtime import freed_memory_reused

with freed_memory_reused():
    pass
for _ in range(2):
    before = mapped_bytes()
    block = torch.empty(2**20)  # 4 MiB
    print(mapped_bytes() > before)
    del block
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_memory_stays_in_the_heap_while_training_and_is_returned_after(no_dropout_bert, reviews, tmp_path):
    assert big_tensor_is_mapped(), "glibc's default: a block this big is mapped apart, and unmapped when freed"
    inside = {}

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            inside.setdefault(args.reuse_freed_memory, big_tensor_is_mapped())

    reference = resolve_model(str(no_dropout_bert))
    tokenizer = load_tokenizer(reference)
    for reuse in (True, False):
        config = TrainConfig(max_steps=1, learning_rate=1e-3, precision="fp32", checkpoint_steps=None,
                             reuse_freed_memory=reuse)
        args = training_arguments(config, str(tmp_path / str(reuse)), "fp32", False)
        build_trainer(classifier(reference, tokenizer), args, tokenizer, reviews, None, [Probe()]).train()
    assert inside == {True: False, False: True}
    assert big_tensor_is_mapped(), "blocks of 32 MB or more are mapped again once training ends"
    # ... and the heap's free pages went back to the system: the resident size drops by the freed block
    done = subprocess.run([sys.executable, "-c", REUSE_PROBE.format(numel=BIG // 4)], capture_output=True, text=True,
                          check=True)
    assert float(done.stdout.split()[-1]) >= 0.9 * BIG / 2**20


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_after_a_block_blocks_below_32_mb_stay_in_the_heap():
    done = subprocess.run([sys.executable, "-c", MEDIUM_BLOCK_PROBE.format(tests=os.path.dirname(__file__))],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"], "a 4 MiB block comes from the heap, as glibc's adapted state"
