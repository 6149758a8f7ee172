"""Errors from the libraries beneath tfcompress (TF-MOT, the TFLite converter) retold in tfcompress's words."""

import re


def summary(error) -> str:
    """The library's own words from an exception, one line: MLIR errors hide them after long source locations."""
    text = str(error).strip()
    messages = [line.rsplit("error: ", 1)[1] for line in text.splitlines() if "error: " in line]
    first = messages[0] if messages else next((line for line in text.splitlines() if line.strip()), "")
    return (first or type(error).__name__).strip().rstrip(".")


def first_few(texts, limit: int) -> str:
    """The first `limit` of `texts` joined by commas, and how many more there are."""
    texts = list(texts)
    more = f" and {len(texts) - limit} more" if len(texts) > limit else ""
    return ", ".join(texts[:limit]) + more


def culprit(error, model):
    """The name of the layer of `model` that an error message mentions (the longest match), or None."""
    text = str(error)
    names = sorted({layer.name for layer in _layers(model)}, key=len, reverse=True)
    for name in names:
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
            return name
    return None


def _layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _layers(layer)


def retold(what, error, model, fix) -> ValueError:
    """A ValueError saying what failed, at which layer, in the library's words, and what to do; `error` as cause."""
    layer = culprit(error, model)
    at = f" at layer {layer!r} ({type(_find(model, layer)).__name__})" if layer else ""
    return ValueError(f"{what}{at}: {summary(error)}. {fix}")


def _find(model, name):
    return next(layer for layer in _layers(model) if layer.name == name)
