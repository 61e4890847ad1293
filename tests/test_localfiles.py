"""Private folders: made 0700, a planted link or another user's folder refused, temp folders
removed on every way out."""
import os
import stat

import pytest

from dlprov.localfiles import UnsafeFolder, private_cache, private_dir, private_tempdir


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_cache_is_made_0700(cache_home):
    found = private_cache("graph", "abc")
    assert found == cache_home / "graph" / "abc"
    for folder in (cache_home, cache_home / "graph", found):
        assert mode(folder) == 0o700


def test_a_loose_folder_of_ours_is_tightened(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    private_dir(loose)
    assert mode(loose) == 0o700


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "victim"
    target.mkdir()
    (target / "precious").write_text("keep me")
    os.chmod(target, 0o755)
    link = tmp_path / "planted"
    link.symlink_to(target)
    with pytest.raises(UnsafeFolder, match="symbolic link"):
        private_dir(link)
    assert (target / "precious").read_text() == "keep me"
    assert mode(target) == 0o755


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a folder owned by another user")
def test_a_folder_of_another_user_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    with pytest.raises(UnsafeFolder, match="another user"):
        private_dir(foreign)


def test_private_tempdir_is_private_and_removed_even_on_error(cache_home):
    with pytest.raises(RuntimeError):
        with private_tempdir("dlprov-test-") as folder:
            (folder / "member").write_bytes(b"x")
            assert mode(folder) == 0o700
            assert folder.parent == cache_home / "tmp"
            raise RuntimeError("boom")
    assert not folder.exists()
