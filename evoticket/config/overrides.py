"""Reading configurations: TOML files and ``section.key=value`` overrides, as plain data.

Nothing here builds a dataclass: these functions turn text into the nested dicts that
:meth:`evoticket.config.CampaignConfig.from_dict` validates.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from evoticket.core.errors import ConfigError


def unknown_key(key: str, valid: Mapping | Sequence, what: str = "key") -> str:
    """``"KEY: unknown WHAT (did you mean 'X'?); valid: A, B"``, the one line for a mistyped key."""
    key = str(key)
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key}: unknown {what}{hint}; valid: {', '.join(valid)}"


def parse_value(text: str) -> Any:
    """Parse a command-line value as TOML (``32``, ``0.1``, ``[300, 100]``, ``true``).

    Anything that is not a TOML value is taken as a plain string, so
    ``finetune.mode=lamarckian`` needs no quotes.
    """
    try:
        parsed = tomllib.loads(f"v = {text}")
    except (ValueError, RecursionError):  # TOMLDecodeError, or an integer too long to convert, or too deep
        return text
    return parsed["v"] if len(parsed) == 1 else text  # "3\nx = 1" is not one value


def split_override(text: str) -> tuple[str, Any]:
    """``"section.key=value"`` -> ``("section.key", parsed value)``.

    Raises:
        ConfigError: if there is no ``=`` or no key.
    """
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. ga.population=32")
    return key.strip(), parse_value(value.strip())


def _split_table_key(section: str, key: str, sub: str) -> list[str]:
    # layer_densities keys are weight names with a dot ("fc1.weight"): keep them whole.
    if (section, key) == ("ticket", "layer_densities"):
        return [sub]
    return sub.split(".", 1)


def apply_overrides(
    raw: dict[str, Any],
    overrides: Sequence[str] | Mapping[str, Any],
    sections: Mapping[str, type],
    top_level: Mapping[str, Any],
) -> dict[str, Any]:
    """Apply overrides to nested plain data (changed in place and returned).

    Args:
        raw: nested configuration data, e.g. ``CampaignConfig.to_dict()``.
        overrides: ``"section.key=value"`` strings (``"method=NAME"`` for a
            top-level key), or a mapping of dotted key to value.
        sections: the valid section names.
        top_level: the valid top-level keys.

    Raises:
        ConfigError: on a malformed override or an unknown section.
    """
    items = overrides.items() if isinstance(overrides, Mapping) else map(split_override, overrides)
    valid = [*top_level, *sections]
    for dotted, value in items:
        section, _, key = dotted.partition(".")
        if section in top_level and not key:
            raw[section] = value
            continue
        if section and section not in sections:
            raise ConfigError(unknown_key(section, valid, "section"))
        if not section or not key:
            raise ConfigError(f"--set {dotted}: give section.key=value, e.g. ga.population=32")
        key, _, sub = key.partition(".")
        if sub:  # ga.operator_args.mutMaskSwap.indpb=0.1 or ticket.layer_densities.fc1.weight=0.2
            target = raw[section].setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{section}.{key}: is not a table, cannot set {dotted}")
            *path, leaf = _split_table_key(section, key, sub)
            for part in path:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{section}.{key}.{part}: is not a table, cannot set {dotted}")
            target[leaf] = value
        else:
            raw[section][key] = value
    return raw


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML configuration file into plain data.

    Raises:
        ConfigError: if the file is missing, a directory, not UTF-8 or not valid TOML.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    except (ValueError, RecursionError) as e:  # an integer too long to convert, arrays nested too deep
        raise ConfigError(f"{path}: not valid TOML: {type(e).__name__}: {e}") from None
