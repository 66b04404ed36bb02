"""Tests of the data set registry: built-ins, register(), entry-point plugins, factories, and the [data] keys."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from evoticket.config import CampaignConfig
from evoticket.core.errors import ConfigError, DataError
from evoticket.data import (
    AUGMENTATIONS,
    BUILTINS,
    DATASETS,
    LAYOUTS,
    Splits,
    apply_layout,
    check_data_name,
    dataset_names,
    load_data,
    load_dataset,
    register,
    splits_from_arrays,
)
from evoticket.data import registry as registry_module
from evoticket.resolve import resolve

FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def toy_loader(*, root=None, val_fraction=0.1, seed=0) -> Splits:
    """A registered data set: 40 inputs (4, 4) in 2 classes, 10 test inputs."""
    rng = np.random.default_rng(5)
    data = {
        "x_train": rng.normal(size=(40, 4, 4)),
        "y_train": np.arange(40) % 2,
        "x_test": rng.normal(size=(10, 4, 4)),
        "y_test": np.arange(10) % 2,
    }
    return splits_from_arrays("toy", data, val_fraction=val_fraction, seed=seed)


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """Whatever a test registers is gone afterwards."""
    saved = dict(DATASETS)
    yield
    DATASETS.clear()
    DATASETS.update(saved)


def _cpu(*overrides: str) -> CampaignConfig:
    return CampaignConfig().with_overrides(["campaign.device=cpu", "model.hidden=[8]", *overrides])


# ---------------------------------------------------------------------------
# built-ins


def test_builtins_are_in_datasets() -> None:
    assert set(BUILTINS) == {"mnist1d", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "npz"}
    assert all(DATASETS[name] is loader for name, loader in BUILTINS.items())


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_takes_a_layout_and_refuses_an_unknown_one_first(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^data\.layout: unknown layout 'bogus'"):
        BUILTINS[name](root=tmp_path, val_fraction=0.1, seed=0, layout="bogus")


@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_auto_layout_is_the_loaders_own_output_bit_for_bit(name: str) -> None:
    if name == "digits":
        pytest.importorskip("sklearn")
    direct = BUILTINS[name](val_fraction=0.1, seed=0)
    for loaded in (
        load_dataset(name),
        load_dataset(name, layout="auto", augment="none"),
        load_data(_cpu(f"data.name={name}").data),
    ):
        assert loaded.input_shape == {"mnist1d": (40,), "digits": (64,)}[name]
        assert loaded.augment == "none"
        for field in FIELDS:
            a, b = getattr(loaded, field), getattr(direct, field)
            assert a.dtype == b.dtype and a.shape == b.shape and a.is_contiguous() and torch.equal(a, b)


def test_unknown_name() -> None:
    with pytest.raises(
        DataError, match=r"^unknown data set 'mnsit' \(did you mean 'mnist'\?\); valid: cifar10, "
    ) as info:
        load_dataset("mnsit")
    assert "npz" in str(info.value) and "'package.module:factory'" in str(info.value)
    with pytest.raises(ConfigError, match=r"^data\.name: unknown data set 'cifar' \(did you mean 'cifar10'\?\)"):
        check_data_name("cifar")
    with pytest.raises(ConfigError, match=r"^data\.name: unknown data set ''"):
        check_data_name("")


# ---------------------------------------------------------------------------
# register()


def test_register_a_loader(restore_registry: None, tmp_path: Path) -> None:
    assert register("toy", toy_loader) is toy_loader
    assert "toy" in DATASETS and "toy" in dataset_names()
    register("toy", toy_loader)  # the same loader again: fine
    s = load_dataset("toy", val_fraction=0.25, seed=1)
    assert s.name == "toy" and s.input_shape == (4, 4) and s.sizes() == {"train": 30, "val": 10, "test": 10}
    assert load_dataset("toy", layout="image").input_shape == (1, 4, 4)
    assert load_dataset("toy", layout="image", augment="crop_flip").augment == "crop_flip"
    assert load_dataset("toy", layout="flat").input_shape == (16,)
    check_data_name("toy")
    resolved = resolve(_cpu("data.name=toy", "data.layout=image"))
    assert resolved.splits.input_shape == (1, 4, 4) and resolved.arch.input_shape == (1, 4, 4)
    with pytest.raises(ConfigError, match=r"^data\.name: unknown data set 'toi' \(did you mean 'toy'\?\)"):
        resolve(_cpu("data.name=toi"))


def test_register_refuses(restore_registry: None) -> None:
    with pytest.raises(ValueError, match="is built in"):
        register("mnist", toy_loader)
    with pytest.raises(ValueError, match="use letters, digits"):
        register("my:data", toy_loader)
    with pytest.raises(ValueError, match="use letters, digits"):
        register("", toy_loader)
    with pytest.raises(ValueError, match="must be callable"):
        register("toy", 3)  # type: ignore[arg-type]
    register("toy", toy_loader)
    with pytest.raises(ValueError, match=r"registered already \(replace=True"):
        register("toy", lambda **kw: toy_loader(**kw))
    other = register("toy", lambda **kw: toy_loader(**kw), replace=True)
    assert DATASETS["toy"] is other


def test_a_loader_that_returns_no_splits(restore_registry: None) -> None:
    register("bad", lambda **kw: {"x_train": 1})
    with pytest.raises(
        DataError, match=r"^data set 'bad': its loader returned a dict, not an evoticket\.data\.Splits$"
    ):
        load_dataset("bad")


# ---------------------------------------------------------------------------
# entry-point plugins


PLUGIN_MODULE = "evoticket_test_plugin"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fake installed distribution declaring two data sets, ``toy_plugin`` and ``broken_plugin``."""
    dist = tmp_path / "evoticket_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evoticket-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[evoticket.datasets]\n"
        f"toy_plugin = {PLUGIN_MODULE}:load\n"
        f"broken_plugin = {PLUGIN_MODULE}_broken:load\n"
        f"not_a_loader = {PLUGIN_MODULE}:NUMBER\n"
    )
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from evoticket.data import splits_from_arrays

            NUMBER = 7

            def load(*, root=None, val_fraction=0.1, seed=0):
                data = {
                    "x_train": np.arange(60.0).reshape(20, 3), "y_train": np.arange(20) % 2,
                    "x_test": np.zeros((4, 3)), "y_test": np.array([0, 1, 0, 1]),
                }
                return splits_from_arrays("toy_plugin", data, val_fraction=val_fraction, seed=seed)
            """
        )
    )
    (tmp_path / f"{PLUGIN_MODULE}_broken.py").write_text("raise ImportError('needs a GPU library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (PLUGIN_MODULE, f"{PLUGIN_MODULE}_broken"):
        sys.modules.pop(name, None)
    yield "toy_plugin"
    for name in (PLUGIN_MODULE, f"{PLUGIN_MODULE}_broken"):
        sys.modules.pop(name, None)


def test_a_plugin_is_found_lazily(plugin: str) -> None:
    assert plugin in dataset_names() and plugin not in DATASETS
    check_data_name(plugin)
    assert PLUGIN_MODULE not in sys.modules  # checked by name, not imported
    s = load_dataset(plugin, val_fraction=0.5)
    assert PLUGIN_MODULE in sys.modules
    assert s.name == "toy_plugin" and s.sizes() == {"train": 10, "val": 10, "test": 4}
    assert load_dataset(plugin, layout="image").input_shape == (1, 3)
    assert resolve(_cpu(f"data.name={plugin}")).splits.num_classes == 2
    with pytest.raises(DataError, match=r"did you mean 'toy_plugin'\?\); valid: .*toy_plugin"):
        load_dataset("toy_plugn")


def test_a_broken_plugin_is_one_line(plugin: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^plugin 'broken_plugin' \(evoticket\.datasets = .*\): cannot be loaded: ImportError: needs a GPU library$",
    ):
        load_dataset("broken_plugin")
    with pytest.raises(
        ConfigError, match=r"^data\.name: plugin 'not_a_loader' \(evoticket\.datasets\) is an int, not a loader"
    ):
        load_dataset("not_a_loader")


def test_builtins_come_before_plugins(plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(registry_module, "load_entry_point", lambda *a: calls.append(a))
    load_dataset("mnist1d")
    assert calls == []


# ---------------------------------------------------------------------------
# factories through the registry and the resolve step


FACTORY_MODULE = "evoticket_test_registry_factory"


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def images(root):
                rng = np.random.default_rng(0)
                return {
                    "x_train": rng.normal(size=(20, 1, 6, 6)), "y_train": np.arange(20) % 2,
                    "x_test": rng.normal(size=(6, 1, 6, 6)), "y_test": np.arange(6) % 2,
                }

            VALUE = 1
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(FACTORY_MODULE, None)
    yield f"{FACTORY_MODULE}:images"
    sys.modules.pop(FACTORY_MODULE, None)


def test_a_factory_by_name(factory: str) -> None:
    check_data_name(factory)
    s = load_dataset(factory, augment="crop_flip")
    assert s.name == factory and s.input_shape == (1, 6, 6) and s.augment == "crop_flip"
    resolved = resolve(_cpu(f"data.name={factory}", "data.augment=crop_flip"))
    assert resolved.splits.augment == "crop_flip" and resolved.arch.input_shape == (1, 6, 6)
    with pytest.raises(ConfigError, match=r"^data\.name: cannot import 'evoticket_nope_module:f': ModuleNotFoundError"):
        resolve(_cpu("data.name=evoticket_nope_module:f"))
    with pytest.raises(ConfigError, match=rf"^data\.name: '{FACTORY_MODULE}:VALUE' is an int, not a callable factory"):
        check_data_name(f"{FACTORY_MODULE}:VALUE")


# ---------------------------------------------------------------------------
# the [data] keys: layout and augment


def test_data_keys_defaults_and_choices() -> None:
    data = CampaignConfig().data
    assert (data.layout, data.augment) == ("auto", "none")
    for layout in LAYOUTS:
        assert CampaignConfig().with_overrides([f"data.layout={layout}"]).data.layout == layout
    for augment in AUGMENTATIONS:
        assert CampaignConfig().with_overrides([f"data.augment={augment}"]).data.augment == augment
    with pytest.raises(ConfigError, match=r"^data\.layout: must be one of 'auto', 'flat', 'image', got 'square'"):
        CampaignConfig().with_overrides(["data.layout=square"])
    with pytest.raises(ConfigError, match=r"^data\.augment: must be one of 'none', 'crop_flip', got 'mixup'"):
        CampaignConfig().with_overrides(["data.augment=mixup"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.augment=crop_flip"], r"^data\.augment: 'crop_flip' needs images \(C, H, W\); mnist1d holds sequences"),
        (
            ["data.augment=crop_flip", "data.layout=flat", "data.name=cifar10"],
            r"^data\.augment: .*data\.layout = 'flat' gives vectors",
        ),
        (
            ["data.augment=crop_flip", "data.name=digits"],
            r"^data\.augment: .*'digits' is flat vectors with data\.layout = 'auto'; use data\.layout = 'image' \(images \(1, 8, 8\)\)",
        ),
        (["data.augment=crop_flip", "data.name=mnist", "data.layout=flat"], r"^data\.augment: "),
    ],
)
def test_augment_refused_for_flat_inputs_before_loading(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        resolve(_cpu(*overrides, "data.root=/nowhere"))  # refused before any file is looked for
    assert "\n" not in str(info.value)


def test_augment_with_image_layout(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    resolved = resolve(_cpu("data.name=digits", "data.layout=image", "data.augment=crop_flip"))
    assert resolved.splits.input_shape == (1, 8, 8) and resolved.splits.augment == "crop_flip"
    # flat arrays of one's own: refused once their shape is known
    np.savez(
        tmp_path / "flat.npz",
        x_train=np.zeros((6, 5)),
        y_train=np.arange(6) % 2,
        x_test=np.zeros((2, 5)),
        y_test=np.arange(2),
    )
    with pytest.raises(
        ConfigError,
        match=r"^data\.augment: 'crop_flip' needs images \(C, H, W\), but data set 'npz' has input shape \(5,\)",
    ):
        resolve(_cpu("data.name=npz", f"data.root={tmp_path / 'flat.npz'}", "data.augment=crop_flip"))


def test_augment_of_two_axis_arrays_needs_the_image_layout(tmp_path: Path) -> None:
    path = tmp_path / "hw.npz"
    np.savez(
        path, x_train=np.zeros((6, 5, 5)), y_train=np.arange(6) % 2, x_test=np.zeros((2, 5, 5)), y_test=np.arange(2)
    )
    with pytest.raises(
        ConfigError, match=r"input shape \(5, 5\); use data\.layout = 'image' or data\.augment = 'none'$"
    ):
        load_dataset("npz", root=path, augment="crop_flip")
    s = load_dataset("npz", root=path, layout="image", augment="crop_flip")
    assert s.input_shape == (1, 5, 5) and s.augment == "crop_flip"


def test_resolve_records_the_configurations_augment_on_given_splits() -> None:
    images = apply_layout(toy_loader(), "image")
    assert images.input_shape == (1, 4, 4) and images.augment == "none"
    assert resolve(_cpu(), splits=images).splits.augment == "none"
    assert resolve(_cpu("data.augment=crop_flip", "data.name=cifar10"), splits=images).splits.augment == "crop_flip"


def test_mnist1d_variant_takes_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    from evoticket.data import mnist1d as mnist1d_module

    monkeypatch.setattr(mnist1d_module, "_mnist1d_arrays", lambda overrides=(): _fake_mnist1d(overrides))
    data = _cpu("data.mnist1d={shear_scale = 1.5}", "data.layout=image").data
    s = load_data(data)
    assert s.input_shape == (1, 40) and s.sizes()["test"] == 10


def _fake_mnist1d(overrides: tuple) -> tuple[np.ndarray, ...]:
    assert overrides == (("shear_scale", 1.5),)
    return np.zeros((40, 40)), np.arange(40) % 10, np.zeros((10, 40)), np.arange(10) % 10


def test_npz_through_the_resolve_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(30, 3, 4, 4)),
        y_train=np.arange(30) % 3,
        x_test=rng.normal(size=(9, 3, 4, 4)),
        y_test=np.arange(9) % 3,
    )
    resolved = resolve(_cpu("data.name=npz", f"data.root={path}", "data.augment=crop_flip"))
    assert resolved.splits.input_shape == (3, 4, 4) and resolved.splits.num_classes == 3
    assert resolved.arch.input_shape == (3, 4, 4) and resolved.splits.augment == "crop_flip"
