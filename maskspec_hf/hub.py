"""The one way maskspec-hf talks to the Hub: a check before training and one upload after it.

A push that cannot work must fail before hours of training, not after them, so every command checks the login and
the repo first (`check_hub_access`) and uploads its Hub-ready folder once, at the end (`upload_folder`). Only the
model's files go up: never pickled arguments, local file lists, checkpoints, logs or hidden files.
"""

import os
from pathlib import Path


# Top-level files that stay local: pickled arguments, and the skipped-clips report (it names local files).
LOCAL_ONLY_FILES = ("training_args.bin", "clips_skipped.json")
# Patterns in `HfApi.upload_folder`'s syntax (fnmatch on paths relative to the folder; "*" matches "/" too):
# hidden files, anything in a sub-folder (checkpoint-*, runs/, __pycache__/) and the local-only files.
HUB_IGNORE_PATTERNS = (".*", "*/*", *LOCAL_ONLY_FILES)


def _brief(err: BaseException, limit: int = 200) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def hub_access_problem(repo_id: str, token: str | None = None, private: bool | None = None) -> str | None:
    """What stops `--push_to_hub` to `repo_id` (no token, offline, refused or read-only token, refused repo), as a
    message saying what to fix; None when the push can work. Creates the repo (or finds it) on the way."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import LocalTokenNotFoundError, OfflineModeIsEnabled

    api = HfApi(token=token)
    where = f"--push_to_hub --hub_model_id {repo_id}"
    try:
        info = api.whoami()
    except LocalTokenNotFoundError:
        return f"{where}: no Hub token; pass --hub_token, set HF_TOKEN or run `hf auth login`."
    except OfflineModeIsEnabled:
        return f"{where}: HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it or drop --push_to_hub."
    except Exception as err:  # noqa: BLE001 - refused token, no network...: the upload would fail the same way
        return (
            f"{where}: the Hub did not accept the token (--hub_token / HF_TOKEN) or could not be reached: "
            f"{_brief(err)}"
        )
    role = ((info or {}).get("auth") or {}).get("accessToken", {}).get("role")
    if role == "read":
        return f"{where}: the Hub token (--hub_token / HF_TOKEN) is read-only; use a token with write access."
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    except Exception as err:  # noqa: BLE001
        user = (info or {}).get("name", "this user")
        return (
            f"{where}: cannot create or write to the repo {repo_id} as {user}: {_brief(err)}; pass "
            "--hub_model_id <namespace>/<name> of a repo this token (--hub_token) can write to."
        )
    return None


def check_hub_access(repo_id: str, token: str | None = None, private: bool | None = None) -> None:
    """`hub_access_problem`, raised as a `ValueError`."""
    problem = hub_access_problem(repo_id, token=token, private=private)
    if problem:
        raise ValueError(problem)


def hub_files(folder: str | os.PathLike) -> list[str]:
    """The files `upload_folder` sends, relative to `folder` (for logs and tests)."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=list(HUB_IGNORE_PATTERNS)))


def upload_folder(
    folder: str | os.PathLike,
    repo_id: str,
    commit_message: str,
    token: str | None = None,
    private: bool | None = None,
) -> str:
    """Create (or reuse) the model repo and upload the folder's Hub files (`hub_files`) in one commit; returns the
    repo URL. `repo_id` may lack the namespace: the token's user is used."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=getattr(repo_url, "repo_id", None) or repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        repo_type="model",
        ignore_patterns=list(HUB_IGNORE_PATTERNS),
    )
    return str(repo_url)


__all__ = ["HUB_IGNORE_PATTERNS", "check_hub_access", "hub_access_problem", "hub_files", "upload_folder"]
