"""Packaging for tfcompress."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
DOCS = ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"]
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "tfcompress" / "_version.py").read_text()).group(1)

setup(
    name="tfcompress",
    version=VERSION,
    description="Distill, prune, quantize and export Keras models as verified int8 .tflite files for phones.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tfcompress", "tfcompress.*"]),
    package_data={"tfcompress": ["recipes/*.yaml"]},  # the demo's recipe
    # Ranges, not pins, so Colab's own TensorFlow is kept. tf-keras must match
    # TensorFlow's minor version; tfcompress checks that at import with the fix.
    # Tested together: tensorflow 2.21.0, tf-keras 2.21.0, tensorflow-model-optimization
    # 0.8.1, ai-edge-litert 2.3.0.
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "tf-keras>=2.16,<2.22",
        "tensorflow-model-optimization>=0.8.0,<0.9",
        "ai-edge-litert>=1.2,<3",
        "numpy>=1.23",
        "absl-py>=1.2",
        "scikit-learn>=1.2",
        "matplotlib>=3.5",  # the pipeline report's plots
        "pyyaml>=5.4",  # YAML recipes, parsed with safe_load
        "h5py>=3",  # a .h5 model's configuration read and checked before Keras loads it (TensorFlow brings it too)
        "tensorboard>=2.16",  # the pipeline's training and stage logs (TF 2.21 no longer brings it)
    ],
    extras_require={
        # The LiteRT quantizer: int4 and weight-only export modes.
        "quantizer": ["litert-quantizer>=0.11"],
        # nbclient and ipykernel run the notebooks in a real kernel, as Colab does; pytest-xdist
        # runs CI's slow step on two workers.
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "ruff>=0.6",
            "litert-quantizer>=0.11",
            "nbclient>=0.8",
            "nbformat>=5",
            "ipykernel>=6",
            "import-linter>=2.2",  # the layers and acyclic-siblings contracts (.importlinter)
            *DOCS,  # tests/test_architecture.py builds the site with --strict
        ],
        # The documentation site: mkdocs serve, or mkdocs build --strict.
        "docs": DOCS,
    },
    entry_points={"console_scripts": ["tfcompress=tfcompress.cli:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
