"""Writing files so that a failure leaves nothing behind and never clobbers a file."""

import os
import tempfile


def check_writable(path, overwrite: bool) -> str:
    """Checks, before any work is done, that `path` can be written."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a file path such as {path}/model.tflite")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists and was left as it is. Pass overwrite=True to replace it, or choose another path."
        )
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The folder {folder} does not exist. Create it first.")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"The folder {folder} is not writable. Choose another path.")
    try:  # os.access says yes to root even on a read-only file system: try it
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(f"The folder {folder} is not writable ({error.strerror}). Choose another path.") from None
    return path


def save_model_atomically(model, path, overwrite: bool = False) -> str:
    """Saves a Keras model (either Keras) as `.keras` at `path`, through a temporary file and a rename."""
    path = check_writable(path, overwrite)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path), prefix=".tfcompress-") as folder:
        staged = os.path.join(folder, os.path.basename(path))
        model.save(staged)
        with open(staged, "rb") as file:
            return write_atomically(path, file.read(), overwrite=overwrite)


def write_atomically(path, content: bytes, overwrite: bool = False) -> str:
    """Writes `content` to `path` through a temporary file and a rename."""
    path = check_writable(path, overwrite)
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.", suffix=".partial"
        )
    except OSError as error:  # e.g. a read-only file system, which os.access does not see for root
        raise PermissionError(
            f"Cannot write in {os.path.dirname(path)} ({error.strerror}). Choose another path."
        ) from error
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} appeared while it was being written; left as it is.")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
