"""`maskspec_hf.hub`: the one Hub access check and the one uploader, mocked where `HfApi` would reach the network."""

from unittest import mock

import huggingface_hub.constants
import pytest
from huggingface_hub import HfApi, RepoUrl

from maskspec_hf.hub import check_hub_access, hub_access_problem, hub_files, upload_folder


HUB_FILES = ["README.md", "config.json", "model.safetensors", "modeling_maskspec.py", "preprocessor_config.json"]


@pytest.fixture
def output_folder(tmp_path):
    """A fine-tuning output folder: the model files, and what must stay local."""
    folder = tmp_path / "out"
    for name in HUB_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("---\nlicense: apache-2.0\n---\n" if name == "README.md" else name)
    local = [
        "training_args.bin", "clips_skipped.json", ".DS_Store", ".git/config", "__pycache__/modeling.cpython-311.pyc",
        "checkpoint-5/model.safetensors", "checkpoint-5/optimizer.pt", "runs/Dec01/events.out.tfevents.1",
    ]  # fmt: skip
    for name in local:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"local")
    return folder


def test_upload_folder_sends_exactly_the_hub_files_in_one_commit(output_folder):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/someone/{repo_id.split('/')[-1]}")  # the token's user's namespace

    def create_commit(self, repo_id, operations, commit_message, **kwargs):
        paths = sorted(op.path_in_repo for op in operations)
        calls.append(("create_commit", repo_id, paths, commit_message, kwargs.get("repo_type")))
        return mock.MagicMock()

    with (
        mock.patch.object(HfApi, "create_repo", create_repo),
        mock.patch.object(HfApi, "create_commit", create_commit),
        mock.patch.object(HfApi, "_validate_yaml", lambda self, content, **kwargs: None),  # a network call
        mock.patch("huggingface_hub.hf_api.is_xet_available", lambda: False),  # upload_folder's one-commit path
        mock.patch.object(HfApi, "preupload_lfs_files", side_effect=AssertionError("no transfer outside the commit")),
    ):
        url = upload_folder(output_folder, "maskspec-tones", "Fine-tune tiny on tones", token="hf_x", private=True)
    assert url == "https://huggingface.co/someone/maskspec-tones"
    assert calls[0] == ("create_repo", "maskspec-tones", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls[1:] == [("create_commit", "someone/maskspec-tones", HUB_FILES, "Fine-tune tiny on tones", "model")]
    assert hub_files(output_folder) == HUB_FILES


def offline_without_a_token(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_access_problems_say_what_to_fix(monkeypatch, tmp_path):
    offline_without_a_token(monkeypatch, tmp_path)
    where = "--push_to_hub --hub_model_id me/model: "
    assert hub_access_problem("me/model") == (
        where + "no Hub token; pass --hub_token, set HF_TOKEN or run `hf auth login`."
    )
    assert hub_access_problem("me/model", token="hf_not_a_real_token") == (
        where + "HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it or drop --push_to_hub."
    )
    with pytest.raises(ValueError, match="--hub_model_id me/model: HF_HUB_OFFLINE is set"):
        check_hub_access("me/model", token="hf_not_a_real_token")

    read_only = {"name": "me", "auth": {"accessToken": {"role": "read"}}}
    created = []
    with (
        mock.patch.object(HfApi, "whoami", lambda self: read_only),
        mock.patch.object(HfApi, "create_repo", lambda self, repo_id, **kwargs: created.append(repo_id)),
    ):
        assert hub_access_problem("me/model", token="hf_read") == (
            where + "the Hub token (--hub_token / HF_TOKEN) is read-only; use a token with write access."
        )
    assert created == []  # a read-only token is refused before any repo is created

    def refused(self):
        raise PermissionError("401 Unauthorized: invalid token")

    with mock.patch.object(HfApi, "whoami", refused):
        problem = hub_access_problem("me/model", token="hf_bad")
    assert problem.startswith(where + "the Hub did not accept the token (--hub_token / HF_TOKEN)")
    assert "PermissionError: 401 Unauthorized: invalid token" in problem


def test_a_refused_repo_is_named_and_a_writable_one_is_created(monkeypatch, tmp_path):
    offline_without_a_token(monkeypatch, tmp_path)
    write = {"name": "me", "auth": {"accessToken": {"role": "write"}}}

    def forbidden(self, repo_id, **kwargs):
        raise PermissionError(f"403 Forbidden: you cannot write to {repo_id}")

    with mock.patch.object(HfApi, "whoami", lambda self: write), mock.patch.object(HfApi, "create_repo", forbidden):
        problem = hub_access_problem("someone-else/model", token="hf_w")
    assert problem.startswith("--push_to_hub --hub_model_id someone-else/model: cannot create or write to the repo "
                              "someone-else/model as me: PermissionError: 403 Forbidden")  # fmt: skip
    assert "--hub_model_id <namespace>/<name>" in problem and "--hub_token" in problem

    created = []
    with (
        mock.patch.object(HfApi, "whoami", lambda self: write),
        mock.patch.object(HfApi, "create_repo", lambda self, repo_id, **kwargs: created.append((repo_id, kwargs))),
    ):
        assert hub_access_problem("me/model", token="hf_w", private=True) is None
        check_hub_access("me/model", token="hf_w")  # no error
    assert created[0] == ("me/model", {"private": True, "exist_ok": True, "repo_type": "model"})
