"""The model price table: built-in prices plus the user's own, loaded into ClickHouse."""
from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from tracelake.store.base import Store

Prices = dict[str, tuple[float, float]]


class PriceFileError(ValueError):
    """A prices file that cannot be used, with the reason."""


def parse_prices(data: object, origin: str) -> Prices:
    """``{"model": [input_usd_per_mtok, output_usd_per_mtok], ...}``; keys starting with ``_`` are comments."""
    if not isinstance(data, dict):
        raise PriceFileError(f"{origin}: expected an object of model -> [input, output] prices")
    prices: Prices = {}
    for model, pair in data.items():
        if model.startswith("_"):
            continue
        ok = isinstance(pair, list) and len(pair) == 2 and all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in pair)
        if not ok:
            raise PriceFileError(f"{origin}: price of {model!r} must be [input, output] USD per million tokens, got {pair!r}")
        prices[model] = (float(pair[0]), float(pair[1]))
    return prices


def builtin_prices() -> Prices:
    text = files("tracelake.store").joinpath("model_prices.json").read_text()
    return parse_prices(json.loads(text), "built-in prices")


def load_prices_file(path: str | Path) -> Prices:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PriceFileError(f"{path}: {exc}") from exc
    return parse_prices(data, str(path))


def install_prices(store: Store, user_file: str | Path | None = None) -> int:
    """Write built-in prices where missing and the user's prices over them, in one INSERT (one part,
    not one per model); reload the dictionary."""
    import pyarrow as pa

    present = store.query_arrow("SELECT Model, argMax(Source, UpdatedAt) AS Source FROM model_prices GROUP BY Model")
    source_of = dict(zip(present.column("Model").to_pylist(), present.column("Source").to_pylist()))
    user = load_prices_file(user_file) if user_file else {}
    # A model the user prices is not written as built-in too: rows of one INSERT share UpdatedAt.
    rows = [(m, p, "builtin") for m, p in builtin_prices().items() if m not in source_of and m not in user]
    rows += [(m, p, "user") for m, p in user.items()]
    if rows:
        store.insert_arrow("model_prices", pa.table({
            "Model": [m for m, _, _ in rows], "InputPerMTok": [p[0] for _, p, _ in rows],
            "OutputPerMTok": [p[1] for _, p, _ in rows], "Source": [s for _, _, s in rows]}))
    store.execute(f"SYSTEM RELOAD DICTIONARY {store.database}.model_prices_dict")
    return len(rows)
