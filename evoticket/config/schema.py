"""Campaign configuration: frozen dataclasses, one home for every default.

A campaign is configured by a TOML file with a top-level ``method`` key and the
sections ``[data]``, ``[model]``, ``[ticket]``, ``[optimizer]`` (every method's
optimizer), ``[budget]``, ``[campaign]`` and the methods' own (``[finetune]`` and
``[ga]`` of the GA, ``[imp]``, ``[train]``, ``[gmp]``, ``[rigl]``, ``[rigl_tuned]``, ``[edge_popup]``,
and any section a plugin registers with :func:`register_section`); every key is
optional and defaults to the value written in this module (and nowhere else). Each key's type and range is checked once, when the
configuration is built; an error names the key and what would be valid, e.g.
``ga.population: must be >= 2, got 0``. This module imports no other stage:
checks that need a data set, a model or a registry run in
:func:`evoticket.methods.resolve`.

For example, a configuration file:

    method = "ga"

    [ticket]
    density = 0.1

    [finetune]
    steps = 100
    mode = "lamarckian"

    [ga.operator_args.mutMaskSwap]
    indpb = 0.05
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evoticket.config.overrides import unknown_key
from evoticket.core.errors import ConfigError

Check = Callable[[Any], str | None]


def _check(fn: Callable[[Any], bool], valid: str) -> dict[str, Check | str]:
    """Field metadata: ``fn(value)`` must hold, else the error says ``valid``.

    ``valid`` is also kept, as ``metadata["valid"]``, for the key's description (``evoticket config``).
    """
    return {"check": lambda v: None if fn(v) else valid, "valid": valid}


def _choice(*names: str) -> dict[str, Check | str]:
    return _check(lambda v: v in names, "must be one of " + ", ".join(repr(n) for n in names))


def _at_least(lo: float) -> dict[str, Check | str]:
    return _check(lambda v: v >= lo, f"must be >= {lo}")


def _positive() -> dict[str, Check | str]:
    return _check(lambda v: v > 0 and math.isfinite(v), "must be a finite number > 0")


def _probability() -> dict[str, Check | str]:
    return _check(lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]")


MNIST1D_ARGS: dict[str, tuple[float, float, bool, bool]] = {
    "num_samples": (500, 100_000, True, True),
    "train_split": (0.1, 0.9, True, False),
    "scale_coeff": (0.0, 2.0, False, False),
    "max_translation": (1, 72, True, True),
    "corr_noise_scale": (0.0, 10.0, True, False),
    "iid_noise_scale": (0.0, 10.0, True, False),
    "shear_scale": (0.0, 10.0, True, False),
    "seed": (0, 2**32 - 1, True, True),
}
"""The ``mnist1d.data.get_dataset_args()`` arguments ``data.mnist1d`` may override: name -> (low, high, high
included, integer). The others (``padding``, ``template_len``, ``final_seq_length``, ``shuffle_seq``, ``url``)
would change the input length or are not numbers."""


def check_mnist1d_args(args: Mapping[str, float]) -> None:
    """Check overrides of MNIST-1D's generator arguments (``data.mnist1d``) against :data:`MNIST1D_ARGS`.

    Args:
        args: argument name -> value (numbers; integers where :data:`MNIST1D_ARGS` says so).

    Raises:
        ConfigError: naming ``data.mnist1d.NAME`` for an unknown argument (listing the valid ones) or a value
            out of its range.
    """
    for name, value in args.items():
        if name not in MNIST1D_ARGS:
            raise ConfigError(
                unknown_key(f"data.mnist1d.{name}", [f"data.mnist1d.{k}" for k in MNIST1D_ARGS], "mnist1d argument")
            )
        low, high, closed, integer = MNIST1D_ARGS[name]
        inside = low <= value <= high if closed else low <= value < high
        whole = not integer or float(value).is_integer()
        multiple = name != "num_samples" or value % 10 == 0
        if not (inside and whole and multiple):
            kind = "an integer" if integer else "a number"
            extra = " and a multiple of 10" if name == "num_samples" else ""
            bracket = "]" if closed else ")"
            shown = int(value) if float(value).is_integer() else value
            raise ConfigError(
                f"data.mnist1d.{name}: must be {kind} in [{low:g}, {high:g}{bracket}{extra}, got {shown!r}"
            )
    return None


@dataclass(frozen=True)
class DataConfig:
    """Which data set, and how its validation split is carved out."""

    name: str = "mnist1d"
    """Data set name: mnist1d, digits, mnist, fashion_mnist, cifar10, cifar100 or npz (see
    ``evoticket.data.BUILTINS``), a name added with ``evoticket.data.register`` or declared by an installed
    package in the entry-point group ``evoticket.datasets``, or ``"package.module:factory"``: a function
    ``factory(root)`` of one's own returning arrays (as in an npz file) or a pair (train_dataset, test_dataset)."""
    root: str = ""
    """Where the data are: the folder of the IDX files (mnist, fashion_mnist), the folder holding
    cifar-10-batches-py / cifar-100-python or that folder itself (cifar10, cifar100), the .npz file holding
    x_train, y_train, x_test, y_test [, x_val, y_val] (npz), the factory's argument; unused by mnist1d and digits."""
    layout: str = field(default="auto", metadata=_choice("auto", "flat", "image"))
    """Shape of one input: auto (the data set's own: images (3, 32, 32) for cifar10/cifar100, flat vectors for
    mnist1d, digits, mnist and fashion_mnist, the arrays' own for npz and factories), flat (one axis) or image
    (channels first: digits (1, 8, 8), mnist (1, 28, 28), mnist1d (1, 40)). Only the shape changes, not a value."""
    augment: str = field(default="none", metadata=_choice("none", "crop_flip"))
    """Augmentation of training minibatches: none, or crop_flip (a random crop of the image zero-padded by 4
    pixels, then a horizontal flip with probability 1/2; images (C, H, W) only, refused for flat inputs)."""
    val_fraction: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "must be in (0, 1)"))
    """Fraction of the training split held out for validation (fitness); in (0, 1)."""
    seed: int = field(default=0, metadata=_at_least(0))
    """Seed of the stratified train/validation split; >= 0."""
    mnist1d: dict[str, float] = field(default_factory=dict, metadata={"check": check_mnist1d_args})
    """``data.name = "mnist1d"`` only: overrides of ``mnist1d.data.get_dataset_args()``, argument name -> value,
    for a variant of the task with the same input length 40 (e.g. ``{corr_noise_scale = 0.5, shear_scale = 1.5,
    iid_noise_scale = 0.1, max_translation = 60}``: more correlated and i.i.d. noise, shear and shift). Valid
    arguments (the generator's defaults in brackets): ``num_samples`` (sequences generated, train + test; an integer
    multiple of 10 in [500, 100000]; [5000]), ``train_split`` (fraction that is training data; in [0.1, 0.9]; [0.8]),
    ``scale_coeff`` (amplitude scaled by 1 + c * U(-0.5, 0.5); in [0, 2); [0.4]), ``max_translation`` (circular
    shift by U{0 .. n-1} of the 72 padded positions; an integer in [1, 72]; [48]), ``corr_noise_scale`` (sd of the
    smoothed background noise; in [0, 10]; [0.25]), ``iid_noise_scale`` (sd of the white noise; in [0, 10]; [0.02]),
    ``shear_scale`` (slope of the added linear ramp drawn from c * U(-0.5, 0.5); in [0, 10]; [0.75]) and ``seed``
    (the generator's seed; an integer in [0, 2**32); [42]). The noise is what makes the task hard: a dense mlp trained
    1500 steps goes from 62% to 29% test accuracy with corr_noise_scale = 0.5 alone, to 44% with iid_noise_scale =
    0.1, and to 19% with the example above. {}: the default data set, bit for bit (Greydanus 2020,
    arXiv:2011.14439)."""


@dataclass(frozen=True)
class ModelConfig:
    """The network whose tickets are evolved."""

    name: str = "mlp"
    """Model name: a built-in model (mlp, mlp_bn, mlp_residual, cnn1d, cnn1d_bn), a seed paper's network (lenet5,
    conv2, conv4, conv6, resnet20), a model registered with evoticket.models.register or by a plugin's
    evoticket.models entry point, or "package.module:factory" naming factory(input_shape, num_classes) -> nn.Module
    (see ``evoticket models``)."""
    hidden: tuple[int, ...] = field(default=(), metadata=_check(lambda v: all(h >= 1 for h in v), "must be sizes >= 1"))
    """Hidden sizes (mlp) or channels (cnn1d) of a built-in model; empty takes the model's default ([300, 100] for
    mlp). Other models take their sizes from their own code: leave it empty."""
    init: str = field(default="kaiming_normal", metadata=_choice("kaiming_normal", "glorot_normal", "signed_constant"))
    """Weight initialiser of theta0: kaiming_normal, glorot_normal or signed_constant."""


@dataclass(frozen=True)
class TicketConfig:
    """The masks of the initial population."""

    density: float = field(default=0.1, metadata=_check(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    """Fraction of the prunable weights kept by the initial random masks, spread over the layers by
    ``allocation`` (uniform: each layer keeps this fraction); in (0, 1]."""
    layer_densities: dict[str, float] = field(
        default_factory=dict,
        metadata=_check(lambda v: all(0 < d <= 1 for d in v.values()), "densities must be in (0, 1]"),
    )
    """Per-layer override of ``density``: weight name (e.g. "fc1.weight") -> density in (0, 1]."""
    density_range: tuple[float, ...] = field(
        default=(),
        metadata=_check(
            lambda v: len(v) in (0, 2) and all(0 < d <= 1 for d in v) and (not v or v[0] < v[1]),
            "must be [] or [low, high] with 0 < low < high <= 1",
        ),
    )
    """[low, high]: the initial population's total densities spaced geometrically from low to high (a
    multi-objective search's start), each spread over the layers by ``allocation``; []: every individual at
    ``density``."""
    allocation: str = "uniform"
    """How ``density`` (the total) is spread over the layers: uniform (every layer the same), erk
    (Erdős–Rényi-Kernel, RigL's) or lth (the per-layer rates of IMP in the LTH paper: the output layer pruned
    at half the rate of the others, and for conv2/conv4/conv6/lenet5 the convolutions more slowly than the
    fully connected layers); see ``evoticket.genome.ALLOCATIONS``. ``layer_densities`` overrides it."""
    placement: str = field(default="random", metadata=_choice("random", "local"))
    """Where the initial masks keep their weights: random (uniform positions, the LTH paper's random pruning) or
    local (each unit of the first masked layer keeps a random contiguous window of inputs, at the same kept count;
    for MNIST-1D, whose inputs are positions of a signal; see ``evoticket.operators.initTicket``). Also the start
    mask of a method that starts sparse (rigl, random). The position-aware mutations (mutWindowShift,
    mutWindowGrow, mutPatternCopy) then move these windows."""
    prune: tuple[str, ...] = ()
    """Which weights the masks cover: parameter or layer names, or fnmatch patterns of them (e.g.
    ["features.*", "classifier.4.weight"]), among the weights of the nn.Linear, nn.Conv1d and nn.Conv2d
    layers the model uses; [] covers every one of them. Biases and normalisation layers are never pruned."""


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer every method trains with: the GA's fine-tunings, IMP's rounds, the one-run methods' runs and
    the final comparison."""

    optimizer: str = field(default="adam", metadata=_choice("adam", "sgd"))
    """adam, or sgd (with momentum)."""
    lr: float = field(default=2e-2, metadata=_positive())
    """Learning rate of the optimizer; > 0."""
    momentum: float = field(default=0.9, metadata=_check(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    """SGD momentum; in [0, 1). Unused by adam."""
    weight_decay: float = field(default=0.0, metadata=_at_least(0.0))
    """L2 weight decay; >= 0."""
    batch_size: int = field(default=100, metadata=_at_least(1))
    """Examples per minibatch; >= 1."""
    data_order: str = field(default="common", metadata=_choice("common", "individual"))
    """The minibatch sequences of networks trained together. common: one sequence for the whole batch (common random
    numbers: the GA compares its individuals on the same minibatches). individual: each network its own sequence,
    seeded by its identity (a ticket's uid, or its place among the run's networks), and its own optimizer arithmetic
    (Adam's per-network bias correction), so that it trains exactly as it would alone whoever shares its batch:
    what evoticket experiment --pack runs the cells of an experiment with."""


@dataclass(frozen=True)
class FinetuneConfig:
    """The GA's short gradient fine-tuning of every individual before its fitness is read (the optimizer is
    ``[optimizer]``'s)."""

    steps: int = field(default=34, metadata=_at_least(0))
    """Gradient steps per individual per evaluation (steps, not epochs); >= 0. 0: no fine-tuning (supermask search)."""
    mode: str = field(default="lamarckian", metadata=_choice("baldwinian", "lamarckian"))
    """baldwinian: fine-tuned weights are discarded; lamarckian (the default since the hybrid levers experiment):
    they become the individual's theta0."""
    inherit_step: int = field(default=0, metadata=_at_least(0))
    """Lamarckian mode: the step of each fine-tuning whose weights the genome inherits (late rewinding as
    inheritance, Frankle et al. 2019, arXiv:1903.01611); 0 (the default): the final weights; in [0, steps]."""
    minibatches: str = field(default="generation", metadata=_choice("generation", "fixed"))
    """Minibatch sequence of the fine-tunings, shared by every individual evaluated together: generation (a new
    sequence each generation: a lucky draw does not last) or fixed (one sequence for the whole run: fitness is a
    function of the genome alone, so ``ga.fitness_cache`` serves re-evaluated parents without training)."""
    dynamic: str = field(default="none", metadata=_choice("none", "rigl", "set"))
    """Dynamic sparse fine-tuning: every ``finetune.delta_t`` steps of each individual's fine-tuning, drop the
    smallest-magnitude kept weights of each layer and grow as many where the dense gradient is largest (rigl; Evci et
    al. 2020, arXiv:1911.11134) or at random (set; Mocanu et al. 2018, arXiv:1707.04780), the whole population
    batched; in Lamarckian mode the mask reached is inherited with the weights. none (the default): static masks."""
    delta_t: int = field(default=10, metadata=_at_least(1))
    """Dynamic fine-tuning: steps between drop-and-grow updates (RigL's Delta T); >= 1."""
    alpha: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "must be in (0, 1)"))
    """Dynamic fine-tuning: the share of each layer's kept weights replaced at each update (constant within a
    fine-tuning; an individual's ``alpha`` gene overrides it); in (0, 1)."""
    genes: tuple[str, ...] = field(
        default=(),
        metadata=_check(
            lambda v: len(set(v)) == len(v) and set(v) <= {"lr", "alpha"},
            "must be a list of distinct names among 'lr', 'alpha', e.g. ['lr', 'alpha']",
        ),
    )
    """Hyperparameters each individual carries as genes (population-based training, Jaderberg et al. 2017,
    arXiv:1711.09846): lr (its learning rate, drawn log-uniformly in ``finetune.lr_range``) and alpha (its
    drop-and-grow fraction, uniformly in ``finetune.alpha_range``; needs ``finetune.dynamic``). Offspring inherit
    their parent's genes; ``mutGenesPerturb`` multiplies them by 0.8 or 1.25 (PBT's explore). () (the default):
    every individual uses ``optimizer.lr`` and ``finetune.alpha``."""
    lr_range: tuple[float, ...] = field(
        default=(0.001, 0.1),
        metadata=_check(lambda v: len(v) == 2 and 0 < v[0] <= v[1], "must be [low, high] with 0 < low <= high"),
    )
    """The lr gene's initial range [low, high], drawn log-uniformly; 0 < low <= high."""
    alpha_range: tuple[float, ...] = field(
        default=(0.02, 0.3),
        metadata=_check(lambda v: len(v) == 2 and 0 < v[0] <= v[1] < 1, "must be [low, high] with 0 < low <= high < 1"),
    )
    """The alpha gene's initial range [low, high], drawn uniformly; 0 < low <= high < 1."""
    optimizer_state: str = field(default="reset", metadata=_choice("reset", "inherit"))
    """Lamarckian mode: inherit: each individual carries its optimizer state (Adam's moments and step count, SGD's
    momentum) with its weights, so its next fine-tuning continues its training where the last one stopped, as
    population-based training copies the whole training state (Jaderberg et al. 2017, arXiv:1711.09846); offspring
    carry their parent's. Costs one (SGD) or two (Adam) more copies of the weights per individual in memory and
    checkpoints. reset (the default): every fine-tuning starts a fresh optimizer (Adam's first steps after a
    restart are large, which costs a lineage trained in many short fine-tunings accuracy)."""


@dataclass(frozen=True)
class GAConfig:
    """The (mu + lambda) genetic algorithm."""

    population: int = field(default=8, metadata=_at_least(2))
    """Population size mu; >= 2."""
    offspring: int = field(default=0, metadata=_at_least(0))
    """Offspring per generation lambda; >= 1, or 0 (the default) for as many as ``ga.population``."""
    generations: int = field(default=120, metadata=_at_least(0))
    """Generations after the initial population; >= 0."""
    cxpb: float = field(default=0.5, metadata=_probability())
    """Probability that a pair of offspring is made by crossover; in [0, 1]."""
    mutpb: float = field(default=1.0, metadata=_probability())
    """Probability that an offspring is mutated (one not crossed over is always mutated); in [0, 1]."""
    tournament_size: int = field(default=3, metadata=_at_least(1))
    """Tournament size of selTournament (parents and survivors); in [1, population + offspring]."""
    elitism: int = field(default=2, metadata=_at_least(0))
    """Best individuals of parents + offspring that always survive; in [0, population]."""
    reevaluate: bool = True
    """Fine-tune the surviving parents again each generation, next to the offspring, so selection compares
    everyone under the same minibatch sequence (no stale lucky fitness); costs mu extra evaluations per generation."""
    survival: str = "selElitistTournament"
    """Survivor scheme choosing mu of parents + offspring (see ``evoticket.operators.SURVIVORS``):
    selElitistTournament keeps the ``elitism`` best, then tournament winners; selNSGA2 (multi-objective, needs two
    or more ``ga.objectives``) keeps the best non-dominated fronts, ties broken by crowding distance (Deb et al. 2002),
    and parents are then drawn by crowded tournament."""
    objectives: tuple[str, ...] = field(
        default=("accuracy",),
        metadata=_check(
            lambda v: (
                len(v) >= 1
                and v[0] == "accuracy"
                and len(set(v)) == len(v)
                and set(v) <= {"accuracy", "density", "flops"}
            ),
            "must be 'accuracy' followed by any of 'density', 'flops', each once, e.g. ['accuracy', 'density']",
        ),
    )
    """What fitness is made of. ["accuracy"]: validation accuracy up, validation loss down as the tie-break (one
    objective). With "density" (fraction of prunable weights kept, down) and "flops" (forward FLOPs per example of the
    masked network, down), fitness is multi-objective: use ``ga.survival = "selNSGA2"``; the records then hold each
    generation's Pareto front (``pareto.csv``) and its hypervolume (``generations.csv``)."""
    seeded: bool = True
    """Every initialisation and variation runs on a generator of its own, seeded by a draw from the operators'
    generator, and the seed is recorded (``recipe`` in ``individuals.jsonl``), so a ticket can be written as a recipe
    and replayed bit for bit (``evoticket export --compact``). false: the operators share one generator (the random
    stream of evoticket 0.2's published experiments, whose files set it)."""
    hall_of_fame: int = field(default=5, metadata=_at_least(1))
    """Size of the hall of fame; >= 1."""
    halving_rungs: int = field(default=3, metadata=_at_least(1))
    """Successive halving within each evaluation batch (ASHA, Li et al., arXiv:1810.05934): every individual gets
    ``finetune.steps`` steps (rung 0), then the best half of a rung ``2**r * finetune.steps`` more steps from the
    weights already trained (rung r), for this many rungs; fitness is an individual's validation accuracy at the last
    rung it reached. 1: no halving; the default 3 (with 34 steps: the hybrid levers experiment's best); >= 1."""
    fitness_cache: bool = False
    """Never fine-tune an unchanged individual twice under the same minibatches: results are cached by content hashes
    of theta0, masks, fine-tuning settings and minibatch seed (for this and the previous generation, kept in the
    checkpoint). Hits cost no compute and are flagged ``cached`` in the records. Useful with ``finetune.minibatches =
    "fixed"``; no effect in Lamarckian mode, where every evaluation changes the genome it evaluates."""
    crossover: str = "cxMaskUniform"
    """Crossover operator (see ``evoticket.operators.CROSSOVERS``)."""
    mutations: tuple[str, ...] = ("mutMagnitudeSwap",)
    """Mutation operators applied in turn to a mutated offspring (see ``evoticket.operators.MUTATIONS``)."""
    operator_args: dict[str, dict[str, float | str]] = field(default_factory=dict)
    """Operator name -> keyword arguments overriding its defaults, e.g. {mutMaskSwap = {indpb = 0.05}} or
    {mutMagnitudeSwap = {grow = "gradient"}}."""

    @property
    def num_offspring(self) -> int:
        """Offspring per generation: ``offspring``, or ``population`` when ``offspring`` is 0."""
        return self.offspring or self.population


@dataclass(frozen=True)
class IMPConfig:
    """Iterative magnitude pruning (``method = "imp"``; Frankle & Carbin 2019, arXiv:1803.03635; late
    rewinding: Frankle et al. 2019, arXiv:1903.01611)."""

    rate: float = field(default=0.2, metadata=_check(lambda v: 0 < v < 1, "must be in (0, 1)"))
    """Fraction of each layer's remaining weights pruned per round (by final magnitude); in (0, 1)."""
    output_rate: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "must be in (0, 1)"))
    """The output layer's rate per round (the LTH paper prunes it at half the others' rate); in (0, 1)."""
    conv_rate: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    """A convolution's rate per round; in [0, 1). 0 takes the LTH paper's for the model where it gives one
    (conv2, conv4 and lenet5: 0.1; conv6: 0.15; see evoticket.models.LTH_RATES), else ``rate``."""
    scope: str = field(default="layer", metadata=_choice("layer", "global"))
    """layer: each layer pruned by its own rate; global: one magnitude threshold over every layer at ``rate``."""
    rewind_step: int = field(default=0, metadata=_at_least(0))
    """Survivors are reset to the weights at this step of round 0's training (0: theta0; late rewinding
    otherwise); in [0, imp.steps]."""
    steps: int = field(default=1500, metadata=_at_least(1))
    """Training steps of each round (optimizer steps); >= 1."""
    eval_every: int = field(default=100, metadata=_at_least(1))
    """Steps between validation checks of a round (its early-stopping step); >= 1."""
    max_rounds: int = field(default=40, metadata=_at_least(1))
    """At most this many prune rounds (a guard: the rounds needed follow from ``ticket.density``); >= 1."""


@dataclass(frozen=True)
class TrainConfig:
    """The one training run of the methods that train a single network: ``dense``, ``random``, ``gmp``,
    ``rigl``, ``edge_popup``, ``bn_only`` and ``output_only`` (the optimizer is ``[optimizer]``'s)."""

    steps: int = field(default=1500, metadata=_at_least(1))
    """Training steps of the run (optimizer steps); >= 1."""
    eval_every: int = field(default=100, metadata=_at_least(1))
    """Steps between validation checks (the early-stopping step, chosen by ``campaign.early_stopping``); >= 1."""


@dataclass(frozen=True)
class GMPConfig:
    """Gradual magnitude pruning within one training run (``method = "gmp"``; Zhu & Gupta 2017,
    arXiv:1710.01878): each layer's density falls from 1 to its target along the cubic schedule
    ``d_t = d_f + (1 - d_f) (1 - (t - t_0) / (t_1 - t_0))**3``."""

    start: float = field(default=0.1, metadata=_check(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    """Fraction of ``train.steps`` at which pruning starts (t_0); in [0, 1)."""
    end: float = field(default=0.6, metadata=_check(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    """Fraction of ``train.steps`` at which the target density is reached (t_1); in (gmp.start, 1]. The
    early-stopping step is chosen among the checks from t_1 on, at the target density."""
    every: int = field(default=50, metadata=_at_least(1))
    """Steps between pruning steps; >= 1."""


@dataclass(frozen=True)
class RigLConfig:
    """Sparse training with drop and grow (``method = "rigl"``; Evci et al. 2020, arXiv:1911.11134; SET:
    Mocanu et al. 2018, arXiv:1707.04780)."""

    grow: str = field(default="gradient", metadata=_choice("gradient", "random"))
    """Where new weights grow: gradient (largest dense-gradient magnitude, RigL) or random (SET)."""
    delta_t: int = field(default=100, metadata=_at_least(1))
    """Steps between mask updates (Delta T); >= 1."""
    alpha: float = field(default=0.3, metadata=_check(lambda v: 0 < v < 1, "must be in (0, 1)"))
    """Initial update fraction: each update drops and grows ``alpha/2 (1 + cos(pi t / T_end))`` of a layer's
    kept weights; in (0, 1)."""
    end: float = field(default=0.75, metadata=_check(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    """Fraction of ``train.steps`` after which the mask stops changing (T_end); in (0, 1]."""


@dataclass(frozen=True)
class RigLTunedConfig:
    """RigL with its learning rate and update fraction tuned at equal compute (``method = "rigl_tuned"``; Evci et al.
    2020, arXiv:1911.11134): ``runs`` RigL runs from the same start and data order, each with its own learning rate
    and alpha, trained in one batch; they share one RigL run's steps (``train.steps // runs`` each; under
    ``budget.train_flops``, 1/runs of the steps the budget pays for). The one with the best validation accuracy at
    its early-stopping step is the reported network, and the final comparison trains it at its learning rate.
    ``[rigl]`` gives the rest (grow, delta_t, end); ``optimizer.lr`` and ``rigl.alpha`` are drawn instead."""

    runs: int = field(default=8, metadata=_at_least(2))
    """RigL runs sharing the steps of one, each with a drawn learning rate and alpha; >= 2."""
    lr_range: tuple[float, ...] = field(
        default=(0.001, 0.1),
        metadata=_check(lambda v: len(v) == 2 and 0 < v[0] <= v[1], "must be [low, high] with 0 < low <= high"),
    )
    """Range [low, high] of each run's learning rate (of ``optimizer.optimizer``), drawn log-uniformly from
    ``campaign.seed``; 0 < low <= high."""
    alpha_range: tuple[float, ...] = field(
        default=(0.05, 0.5),
        metadata=_check(lambda v: len(v) == 2 and 0 < v[0] <= v[1] < 1, "must be [low, high] with 0 < low <= high < 1"),
    )
    """Range [low, high] of each run's initial update fraction (``rigl.alpha``'s meaning), drawn uniformly;
    0 < low <= high < 1."""


@dataclass(frozen=True)
class EdgePopupConfig:
    """Supermask training (``method = "edge_popup"``; Ramanujan et al. 2020, arXiv:1911.13299): the weights
    stay at theta0, a score per weight is learnt (optimizer of ``[optimizer]``) and each layer keeps its top-k
    weights by |score|; ``model.init = "signed_constant"`` gives the paper's signed-constant weights."""

    score_init: str = field(default="kaiming_uniform", metadata=_choice("kaiming_uniform", "weights"))
    """Initial scores: kaiming_uniform (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), hidden-networks' default) or
    weights (|theta0|: the first mask is the magnitude top-k)."""
    lr: float = field(default=0.005, metadata=_at_least(0.0))
    """Learning rate of the scores (with ``optimizer.optimizer``); 0 uses ``optimizer.lr``; >= 0. Scores move
    ``lr`` per Adam step whatever their gradient's scale, so ``optimizer.lr`` (0.02) reshuffles the masks
    too fast; 0.005 was the best of 0.0005-0.02 on MNIST-1D at 50% density."""


@dataclass(frozen=True)
class BudgetConfig:
    """A compute budget any method can be stopped at, checked by the compute meter (``evoticket.training.meter``)."""

    train_flops: int = field(default=0, metadata=_at_least(0))
    """Training FLOPs the method may spend, summed over everything it trains before and during the final
    training of the network it reports (for the GA: its fine-tunings plus one final training of its ticket,
    ``campaign.final_steps``); 0: no budget. Each method stops before the step, round or generation that
    would exceed it and reports its result there; >= 0."""


TRACKERS = ("tensorboard", "mlflow", "wandb")
"""The experiment trackers ``campaign.trackers`` may name (``evoticket.records.trackers``)."""

UNHASHED = frozenset({"campaign.trackers", "campaign.tracking_uri"})
"""Keys left out of :meth:`CampaignConfig.hash`: where a run is mirrored, not what it computes (a run with trackers
reports the hash of the same run without them)."""


@dataclass(frozen=True)
class CampaignSection:
    """Seed, device and the final lottery-ticket comparison."""

    seed: int = field(default=0, metadata=_at_least(0))
    """Seed of every random number in the campaign; >= 0."""
    device: str = field(
        default="auto",
        metadata=_check(
            lambda v: v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()),
            "one of 'auto', 'cpu', 'cuda', 'cuda:N'",
        ),
    )
    """Where fine-tuning runs: auto (CUDA when present, else CPU), cpu, cuda or cuda:N."""
    max_memory_mb: float = field(default=2048.0, metadata=_positive())
    """Memory budget of one batched training (MiB): a population is trained in chunks that fit it; > 0."""
    matmul_precision: str = field(default="highest", metadata=_choice("highest", "high", "medium"))
    """float32 matmul precision (torch.set_float32_matmul_precision): highest (float32 throughout, the default), high
    (TF32 on NVIDIA GPUs from Ampere on: a 10-bit mantissa in the matmuls' inputs, several times their throughput) or
    medium (bfloat16). Recorded in summary.json; on the CPU it changes nothing here."""
    deterministic: bool = True
    """On a GPU, PyTorch's deterministic algorithms (torch.use_deterministic_algorithms, warning where an operation
    has none, and cuBLAS's fixed workspace), so that a campaign run twice gives the same records; false: the
    fastest kernels. Recorded in summary.json; the CPU kernels used are deterministic either way."""
    population_block: int = field(default=0, metadata=_at_least(0))
    """Most individuals trained in one batched computation (a population block); 0 (the default): the device's
    own (64 on the CPU, where blocks stay in cache, and for a network that runs through torch.func as many as
    hold 24 MiB of minibatch activations: one at a time for a convolutional network on 32x32 images; the whole
    population on a GPU), fewer where ``campaign.max_memory_mb`` demands. Blocks share the minibatch sequence; a block's size can change the last
    bits of a result (a batched matmul over P networks need not round as one over P/2), so records follow this
    setting and never the backend: the Ray backend gives each actor whole blocks. To spread a population over
    Ray actors (several GPUs), set it to the population per actor; >= 0."""
    final_steps: int = field(default=1500, metadata=_at_least(1))
    """Training steps of the final comparison (best ticket, dense, random mask); >= 1."""
    final_seeds: int = field(default=3, metadata=_at_least(1))
    """Data-order seeds the final comparison is repeated over (mean and std reported); >= 1."""
    final_eval_every: int = field(default=100, metadata=_at_least(1))
    """Steps between validation checks for early stopping in the final comparison; >= 1."""
    early_stopping: str = field(default="val_acc", metadata=_choice("val_acc", "val_loss", "none"))
    """Early-stopping step of the final comparison: max validation accuracy, min validation loss, or none (last)."""
    winning_tolerance: float = field(default=0.01, metadata=_at_least(0.0))
    """A ticket is winning if its mean test accuracy is >= the dense network's minus this; in [0, 1]."""
    ensemble: int = field(default=0, metadata=_at_least(0))
    """Tickets averaged as one ensemble of sparse networks, reported beside the single ticket, never instead of it
    (FreeTickets, Liu et al. 2022, arXiv:2106.14568): the reported ticket, then the next best tickets the method
    keeps (the GA's hall of fame), each trained as the final comparison trains the ticket; the ensemble predicts the
    argmax of its members' mean softmax. ``summary.json["ensemble"]`` gives its test accuracy and its inference
    FLOPs per example (its members' summed); the other members' training is reported apart
    (``summary.json["compute"]["ensemble"]``), never in a budget. Where a run kept fewer tickets, the ensemble has
    the members there were, and says so. 0: off; at most the tickets the method can keep (``ga.hall_of_fame``; 5
    rounds for IMP; 1 for a one-run method), checked before the run (in an experiment, set it in the GA's
    ``[variants.ga]``); >= 0."""
    backend: str = field(default="local", metadata=_choice("local", "ray"))
    """Where a generation's evaluation runs: local (this process, one batched fine-tuning) or ray (shards over
    Ray actors, one per GPU or per ``campaign.worker_cpus`` CPUs; ``pip install 'evoticket[ray]'``). Both give
    the same records for the same seed."""
    ray_address: str = ""
    """The Ray cluster of ``backend = "ray"``: empty (a local instance started for the run, or the one this
    process already started), ``auto`` (the cluster of ``ray start`` on this machine) or ``HOST:PORT``."""
    workers: int = field(default=0, metadata=_at_least(0))
    """Ray actors evaluating shards of each generation; 0 (the default): one per GPU of the cluster, or one
    per ``campaign.worker_cpus`` CPUs on a CPU cluster; >= 0."""
    worker_cpus: int = field(default=1, metadata=_at_least(1))
    """CPUs (and torch threads) of each Ray actor on a CPU cluster; >= 1."""
    progress: bool = True
    """Show a progress bar."""
    plots: str = field(default="all", metadata=_choice("all", "png", "fitness", "none"))
    """Figures drawn at the end of a run (``evoticket plot RUN_DIR`` draws them all at any time): all (every
    figure, PNG and PDF; about 12 s for the default campaign on 2 cores), png (every figure, PNG only),
    fitness (``fitness.png`` only: grids of many runs, the crash tests) or none."""
    trackers: tuple[str, ...] = field(
        default=(),
        metadata=_check(
            lambda v: all(n in TRACKERS for n in v) and len(set(v)) == len(v),
            "must be a list of distinct names out of " + ", ".join(repr(n) for n in TRACKERS),
        ),
    )
    """Experiment trackers that mirror the run (its configuration, each generation's ``generations.csv`` row, the
    final comparison and the figures), zero or more of tensorboard, mlflow, wandb; each is an extra
    (``pip install 'evoticket[mlflow]'``). Logs stay in the run directory unless asked otherwise (TensorBoard:
    ``runs/NAME/tensorboard/``, MLflow: ``runs/NAME/mlflow.db`` or ``campaign.tracking_uri``, W&B: offline,
    ``runs/NAME/wandb/``); a tracker that fails warns once and the run goes on; the records never change."""
    tracking_uri: str = ""
    """MLflow tracking URI of ``campaign.trackers = ["mlflow"]`` (e.g. ``http://localhost:5000`` or
    ``sqlite:///mlflow.db``); empty (the default): the SQLite database ``runs/NAME/mlflow.db`` (an experiment's
    cells: ``runs/EXPERIMENT/mlflow.db``); a SQLite store keeps its artifacts beside it, in ``mlartifacts/``."""


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "ticket": TicketConfig,
    "optimizer": OptimizerConfig,
    "finetune": FinetuneConfig,
    "ga": GAConfig,
    "imp": IMPConfig,
    "train": TrainConfig,
    "gmp": GMPConfig,
    "rigl": RigLConfig,
    "rigl_tuned": RigLTunedConfig,
    "edge_popup": EdgePopupConfig,
    "budget": BudgetConfig,
    "campaign": CampaignSection,
}
"""Section name -> its dataclass; a TOML file's tables."""

MOVED: dict[str, str] = {
    **{f"finetune.{k}": f"optimizer.{k}" for k in ("optimizer", "lr", "momentum", "weight_decay", "batch_size")},
    "finetune.max_memory_mb": "campaign.max_memory_mb",
}
"""Keys of evoticket 0.2 that live elsewhere now: old dotted key -> new one. A file or ``--set`` that uses an
old key gets a one-line error naming the new place; files a run wrote itself (``config.toml``, checkpoints,
ticket files) are read with :func:`migrate`."""

_REGISTERED: dict[str, type] = {}


def register_section(name: str, cls: type) -> None:
    """Add a configuration section for a method of one's own (a plugin, a notebook, a test).

    The section is read from files and ``--set`` like a built-in one, written in ``config.toml`` with its
    defaults, and reached as ``config.NAME`` (an instance of ``cls``). Registering the same class again is a no-op.

    Args:
        name: the table's name, a Python identifier that is not a built-in section or top-level key.
        cls: a frozen dataclass whose fields all have defaults (checks in ``field(metadata={"check": ...})``
            as the built-in sections have).

    Raises:
        ValueError: for a name taken by another section or top-level key, or a class that is not a dataclass.
    """
    if not name.isidentifier() or name in SECTIONS or name in TOP_LEVEL:
        raise ValueError(f"section {name!r}: not a free section name (built-in: {', '.join(SECTIONS)})")
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"section {name!r}: {cls!r} is not a dataclass")
    if _REGISTERED.get(name, cls) is not cls:
        raise ValueError(f"section {name!r}: already registered with {_REGISTERED[name].__name__}")
    _REGISTERED[name] = cls


def unregister_section(name: str) -> None:
    """Remove a section added by :func:`register_section` (no-op when absent)."""
    _REGISTERED.pop(name, None)


def _with_plugin_sections() -> dict[str, type]:
    """:func:`all_sections` after registering the sections of the installed method plugins (entry points of
    ``evoticket.methods`` whose method has a ``section`` and a ``settings`` dataclass)."""
    from evoticket.core.plugins import load_group

    for method in load_group("evoticket.methods").values():
        section, settings = getattr(method, "section", None), getattr(method, "settings", None)
        if section and settings is not None and section not in all_sections():
            register_section(section, settings)
    return all_sections()


def all_sections() -> dict[str, type]:
    """Every section: the built-in :data:`SECTIONS`, then the registered ones, name -> dataclass."""
    return {**SECTIONS, **_REGISTERED}


def migrate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration written by an earlier evoticket with its keys moved to where they live now (:data:`MOVED`).

    Only for files a run wrote itself; a user's own file with an old key is refused with the new place.
    """
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for old, new in MOVED.items():
        section, key = old.split(".")
        if isinstance(out.get(section), dict) and key in out[section]:
            value = out[section].pop(key)
            new_section, new_key = new.split(".")
            out.setdefault(new_section, {}).setdefault(new_key, value)
    return out


TOP_LEVEL: dict[str, str] = {"method": "ga"}
"""Top-level keys (not in a section) -> default: ``method`` names the way tickets are found
(see ``evoticket.methods.METHODS``); each method's own settings live in the section of its name."""


@dataclass(frozen=True)
class CampaignConfig:
    """A whole campaign's configuration (every section has full defaults).

    Build it with ``CampaignConfig()`` for the default campaign,
    :func:`evoticket.config.load_config` from a TOML file or :meth:`from_dict`;
    change it with :meth:`with_overrides`. Construction checks every key's
    type and range and the checks between keys of this configuration; the
    checks that need a data set, a model or a registry (names, layer names,
    memory, device) run in :func:`evoticket.methods.resolve`, before anything
    is written.

    Attributes:
        method: the method that finds tickets (top-level key ``method``,
            default ``"ga"``).

    Raises:
        ConfigError: on an unknown key, a wrong type or an out-of-range value.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ticket: TicketConfig = field(default_factory=TicketConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    ga: GAConfig = field(default_factory=GAConfig)
    imp: IMPConfig = field(default_factory=IMPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gmp: GMPConfig = field(default_factory=GMPConfig)
    rigl: RigLConfig = field(default_factory=RigLConfig)
    rigl_tuned: RigLTunedConfig = field(default_factory=RigLTunedConfig)
    edge_popup: EdgePopupConfig = field(default_factory=EdgePopupConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    campaign: CampaignSection = field(default_factory=CampaignSection)
    method: str = TOP_LEVEL["method"]
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Registered sections (:func:`register_section`) by name; missing ones take their defaults, and each is
    reached as ``config.NAME``."""

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            section = getattr(self, name)
            if not isinstance(section, cls):
                raise ConfigError(f"{name}: must be a table of {cls.__name__} keys")
            _validate_section(name, section)
        extra = dict(self.extra)
        for name in extra:
            if name not in _REGISTERED:
                raise ConfigError(unknown_key(name, [*TOP_LEVEL, *all_sections()], "section"))
        for name, cls in _REGISTERED.items():
            section = extra.setdefault(name, cls())
            if not isinstance(section, cls):
                raise ConfigError(f"{name}: must be a table of {cls.__name__} keys")
            _validate_section(name, section)
        object.__setattr__(self, "extra", extra)
        if not isinstance(self.method, str) or not self.method:
            raise ConfigError(f"method: must be a method name such as 'ga', got {_describe(self.method)}")
        _validate_cross(self)

    def __getattr__(self, name: str) -> Any:
        """A registered section (:func:`register_section`) by name."""
        extra = self.__dict__.get("extra") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} has no section or attribute {name!r}")

    def section(self, name: str) -> Any:
        """A section by name, built-in or registered.

        Raises:
            ConfigError: for a name that is no section, with the valid ones.
        """
        if name in SECTIONS:
            return getattr(self, name)
        if name in self.extra:
            return self.extra[name]
        raise ConfigError(unknown_key(name, list(all_sections()), "section"))

    # ------------------------------------------------------------ conversion
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CampaignConfig:
        """Build from nested plain data (as parsed from TOML).

        Raises:
            ConfigError: on an unknown section or key (with a "did you mean"),
                a wrong type or an out-of-range value.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError("configuration: must be a table of sections")
        sections: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        known = all_sections()
        for name, values in raw.items():
            if name in TOP_LEVEL:
                sections[name] = _coerce(name, values, str)
                continue
            if name not in known:
                known = _with_plugin_sections()
            if name not in known:
                raise ConfigError(unknown_key(name, [*TOP_LEVEL, *known], "section"))
            if not isinstance(values, Mapping):
                raise ConfigError(f"{name}: must be a table, got {_describe(values)}")
            built = _build_section(name, known[name], values)
            if name in SECTIONS:
                sections[name] = built
            else:
                extra[name] = built
        return cls(**sections, extra=extra)

    @classmethod
    def from_stored(cls, raw: Mapping[str, Any]) -> CampaignConfig:
        """Build from a configuration a run wrote itself (``config.toml``, a checkpoint, a ticket file), also one of
        an earlier evoticket whose keys have moved since (:func:`migrate`).

        Raises:
            ConfigError: as :meth:`from_dict`.
        """
        return cls.from_dict(migrate(raw))

    def to_dict(self) -> dict[str, Any]:
        """Nested plain data (lists, dicts, numbers, strings), TOML-writable: top-level keys, then sections."""
        top = {key: getattr(self, key) for key in TOP_LEVEL}
        out = {**top, **{name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}}
        out.update({name: _plain(dataclasses.asdict(section)) for name, section in self.extra.items()})
        return out

    def to_toml(self) -> str:
        """The fully resolved configuration as TOML text."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def hash(self) -> str:
        """SHA-256 of the resolved configuration (hex, 16 characters), the keys of :data:`UNHASHED` left out."""
        raw = self.to_dict()
        for dotted in UNHASHED:
            section, key = dotted.split(".")
            raw[section].pop(key, None)
        text = json.dumps(raw, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: Sequence[str] | Mapping[str, Any]) -> CampaignConfig:
        """A copy with ``section.key=value`` (or top-level ``method=NAME``) overrides applied.

        Args:
            overrides: strings ``"section.key=value"`` (value parsed as a TOML
                value, bare words taken as strings), or a mapping of dotted key
                to value.

        Raises:
            ConfigError: on a malformed override, an unknown key or a bad value.
        """
        from evoticket.config.overrides import apply_overrides

        return CampaignConfig.from_dict(apply_overrides(self.to_dict(), overrides, all_sections(), TOP_LEVEL))

    def lookup(self, dotted: str) -> Any:
        """The value of a dotted key, e.g. ``"ga.population"`` or ``"method"``."""
        raw = self.to_dict()
        section, _, key = dotted.partition(".")
        return raw[section][key] if key else raw[section]

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value for every key (``"method"``, ``"ga.population"``, ...)."""
        raw = self.to_dict()
        out = {key: raw[key] for key in TOP_LEVEL}
        out.update(
            {f"{section}.{key}": v for section in raw if section not in TOP_LEVEL for key, v in raw[section].items()}
        )
        return out


def _validate_cross(config: CampaignConfig) -> None:
    """Checks between keys of the configuration itself (registries and data are checked when resolving)."""
    ga = config.ga
    if not ga.mutations:
        raise ConfigError("ga.mutations: must name at least one mutation, e.g. ['mutMaskSwap']")
    pool = ga.population + ga.num_offspring
    if ga.tournament_size > pool:
        raise ConfigError(
            f"ga.tournament_size: must be <= ga.population + ga.offspring ({pool}), got {ga.tournament_size}"
        )
    if ga.elitism > ga.population:
        raise ConfigError(f"ga.elitism: must be <= ga.population ({ga.population}), got {ga.elitism}")
    multi = len(ga.objectives) > 1
    if multi and ga.survival != "selNSGA2":
        raise ConfigError(
            f"ga.survival: multi-objective fitness {list(ga.objectives)} needs 'selNSGA2', got {ga.survival!r} "
            "(or ga.objectives = ['accuracy'])"
        )
    if not multi and ga.survival == "selNSGA2":
        raise ConfigError(
            "ga.objectives: selNSGA2 needs two or more objectives, e.g. ['accuracy', 'density'], got ['accuracy']"
        )
    if config.ticket.density_range and config.ticket.layer_densities:
        raise ConfigError("ticket.density_range: cannot be combined with ticket.layer_densities; set one of them")
    if config.finetune.inherit_step and config.finetune.mode != "lamarckian":
        raise ConfigError(
            f"finetune.inherit_step: the step whose weights a Lamarckian genome inherits; needs finetune.mode = "
            f"'lamarckian' (got {config.finetune.mode!r}), or 0"
        )
    if config.ga.halving_rungs > 1 and config.finetune.steps == 0:
        raise ConfigError(
            f"ga.halving_rungs: successive halving trains the best further; needs finetune.steps >= 1, or 1 rung "
            f"(got {config.ga.halving_rungs})"
        )
    if config.finetune.inherit_step > config.finetune.steps:
        raise ConfigError(
            f"finetune.inherit_step: must be <= finetune.steps ({config.finetune.steps}), got {config.finetune.inherit_step}"
        )
    if config.imp.rewind_step > config.imp.steps:
        raise ConfigError(f"imp.rewind_step: must be <= imp.steps ({config.imp.steps}), got {config.imp.rewind_step}")
    if config.gmp.end <= config.gmp.start:
        raise ConfigError(f"gmp.end: must be > gmp.start ({config.gmp.start}), got {config.gmp.end}")
    if config.campaign.winning_tolerance > 1:
        raise ConfigError(f"campaign.winning_tolerance: must be in [0, 1], got {config.campaign.winning_tolerance}")


# ---------------------------------------------------------------------------
# validation


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            moved = MOVED.get(f"{name}.{key}")
            if moved is not None:
                section, new = moved.split(".")
                raise ConfigError(
                    f"{name}.{key}: moved to {moved} (write it as {new} = ... under [{section}], or --set {moved}=...)"
                )
            raise ConfigError(unknown_key(f"{name}.{key}", [f"{name}.{k}" for k in fields]))
        kwargs[key] = _coerce(f"{name}.{key}", value, _hints(cls)[key])
    return cls(**kwargs)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert a parsed value to the field's type, or raise ConfigError naming ``key``."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be true or false, got {_describe(value)}")
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:
                raise ConfigError(f"{key}: must be a 64-bit integer (as TOML allows), got {value}")
            return value
        raise ConfigError(f"{key}: must be an integer, got {_describe(value)}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
            return number
        raise ConfigError(f"{key}: must be a number, got {_describe(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: must be a string, got {_describe(value)}")
    if origin is tuple:
        (item, _) = typing.get_args(hint)
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise ConfigError(f"{key}: must be a list, got {_describe(value)}")
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: must be a table, got {_describe(value)}")
        return {str(k): _coerce(f"{key}.{k}", v, item) for k, v in value.items()}
    if origin in (types.UnionType, typing.Union):  # the first type the value converts to
        options = typing.get_args(hint)
        for option in options:
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        names = " or ".join(
            {"float": "a number", "str": "a string", "int": "an integer"}.get(o.__name__, o.__name__) for o in options
        )
        raise ConfigError(f"{key}: must be {names}, got {_describe(value)}")
    raise TypeError(f"unsupported configuration type {hint!r} for {key}")  # a bug, not a user error


def _validate_section(name: str, section: Any) -> None:
    hints = _hints(type(section))
    for f in dataclasses.fields(section):
        key = f"{name}.{f.name}"
        value = _coerce(key, getattr(section, f.name), hints[f.name])
        object.__setattr__(section, f.name, value)
        check = f.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{key}: {problem}, got {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
