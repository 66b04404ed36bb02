"""Convolutional and user networks in the training engine: augmentation, blocks, scopes, the memory estimate."""

from __future__ import annotations

import torch

from evoticket.config import OptimizerConfig
from evoticket.data import Splits, with_augment
from evoticket.genome import Ticket
from evoticket.models import build_architecture
from evoticket.operators import initTicket
from evoticket.training import (
    augmentation_seeds,
    bytes_per_individual,
    finetune_tickets,
    minibatch_indices,
    minibatches,
    train,
)


def image_splits(n=120, classes=3, shape=(1, 8, 8), augment="none"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x[torch.arange(n), 0, y, :3] += 2.0  # a learnable signal: the class's row is bright
    splits = Splits("img", x[:80], y[:80], x[80:100], y[80:100], x[100:], y[100:], classes)
    return with_augment(splits, augment)


def test_crop_flip_is_applied_per_minibatch_seeded_by_its_examples():
    plain, augmented = image_splits(), image_splits(augment="crop_flip")
    batches = minibatch_indices(80, 6, 16, seed=0)
    raw = [x for x, _ in minibatches(plain, batches)]
    once = [x for x, _ in minibatches(augmented, batches)]
    again = [x for x, _ in minibatches(augmented, batches[:2])] + [x for x, _ in minibatches(augmented, batches[2:])]
    assert all(a.shape == r.shape for a, r in zip(once, raw, strict=True))
    assert any(not torch.equal(a, r) for a, r in zip(once, raw, strict=True))  # augmented
    assert all(torch.equal(a, b) for a, b in zip(once, again, strict=True))  # however the steps are sliced
    assert augmentation_seeds(batches[2:]) == augmentation_seeds(batches)[2:]
    assert len(set(augmentation_seeds(batches))) == 6
    assert next(y for _, y in minibatches(augmented, batches)).tolist() == plain.y_train[batches[0]].tolist()


def test_a_conv_population_gives_the_same_networks_in_one_block_or_several():
    arch = build_architecture("lenet5", (1, 8, 8), 3)
    splits = image_splits(augment="crop_flip")
    g = torch.Generator().manual_seed(1)
    tickets = [initTicket(Ticket, arch, 0.3, rng=g) for _ in range(4)]
    cfg = OptimizerConfig(optimizer="sgd", lr=0.05, batch_size=16)  # Adam would magnify float noise near zero
    whole = finetune_tickets(tickets, arch, splits, cfg, seed=0, steps=6, return_weights=True)
    blocks = finetune_tickets(tickets, arch, splits, cfg, seed=0, steps=6, return_weights=True, block=1)
    for name, value in whole.weights.items():
        torch.testing.assert_close(blocks.weights[name], value, atol=1e-5, rtol=1e-5, msg=name)
    # masks hold: pruned weights stay zero after training
    for name in arch.weight_names:
        masks = torch.stack([t.masks[name] for t in tickets])
        assert torch.all(whole.weights[name][~masks] == 0)
    # the memory estimate sees the convolutions' activations
    assert bytes_per_individual(arch, cfg, 20) > arch.num_params() * 17


def test_resnet20_trains_batchnorm_only_with_per_individual_statistics():
    arch = build_architecture("resnet20", (3, 8, 8), 3)
    g = torch.Generator().manual_seed(2)
    theta0 = {}
    per = [arch.init_params("kaiming_normal", g) for _ in range(2)]
    theta0 = {k: torch.stack([p[k] for p in per]) for k in per[0]}
    masks = {k: torch.rand(theta0[k].shape, generator=g) < 0.5 for k in arch.weight_names}
    splits = image_splits(shape=(3, 8, 8))
    state = train(
        arch, theta0, masks, splits, OptimizerConfig(batch_size=16), minibatch_indices(80, 3, 16, 0), scope="bn"
    )
    changed = {k for k in theta0 if not torch.equal(state.params[k], theta0[k] * masks.get(k, 1))}
    assert changed == set(arch.norm_param_names)
    assert torch.equal(state.buffers["bn1.num_batches_tracked"], torch.full((2,), 3))
    assert not torch.allclose(state.buffers["bn1.running_mean"][0], state.buffers["bn1.running_mean"][1])
