"""Where the project lives: the one constant the notebooks' Colab badges and install cells are checked against.

The project has no public repository yet; when it has, change `REPOSITORY` and the
notebooks with it (tests/test_notebooks.py fails until they match).
"""

REPOSITORY = "tfcompress/tfcompress"  # owner/name on GitHub
INSTALL_URL = f"tfcompress @ git+https://github.com/{REPOSITORY}"
COLAB_URL = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/"
