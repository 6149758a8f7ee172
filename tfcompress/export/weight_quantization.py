"""Weight-only and int4 modes through the LiteRT quantizer (`litert-quantizer`), an optional extra."""

from tfcompress._choices import QUANTIZER_RECIPES as RECIPES


def check_available(mode: str) -> None:
    """Raises a clear ImportError when `mode` needs the LiteRT quantizer and it is not installed."""
    try:
        import litert_quantizer  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f'Mode {mode!r} uses the LiteRT quantizer, an optional extra: pip install "tfcompress[quantizer]"'
        ) from error


def quantize(float_content: bytes, mode: str) -> bytes:
    """Quantizes a float32 `.tflite` with the LiteRT quantizer's recipe for `mode`."""
    from litert_quantizer import quantizer, recipe

    engine = quantizer.Quantizer(float_content)
    engine.load_quantization_recipe(getattr(recipe, RECIPES[mode])())
    result = engine.quantize(enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)
