"""``python -m build`` gives an sdist and a wheel that install and work.

One test, built once (about 20 s): the sdist is built from a copy of the tree,
the wheel from the sdist (so a file missing from the sdist fails here), both
are inspected, then the wheel is installed into a fresh virtual environment
with pip (``--system-site-packages`` for Twisted and friends, ``--no-deps``, no index)
where ``txsipua demo`` (the README's first command) must pass; the sdist likewise and ``twist
--help`` must list the plugin.  Skipped without the ``build`` frontend outside CI.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", "build", "dist", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache",
        "_build", ".tox", ".venv"}


def _copy_tree(dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP or n.endswith((".egg-info", ".so", ".pyc")) or n == "dropin.cache"}

    shutil.copytree(ROOT, dest, ignore=ignore)


def test_sdist_and_wheel_build_install_and_run(tmp_path: Path) -> None:
    """sdist and wheel: complete metadata, py.typed, the plugin, the accelerator's source; the
    installed wheel runs ``txsipua demo`` and ``twist`` lists txsipua."""
    try:
        import build  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the build frontend is not installed (the test extra has it)")
        pytest.skip("the build frontend is not installed (pip install build)")
    src = tmp_path / "src"
    _copy_tree(src)
    out = tmp_path / "dist"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no files found matching" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr  # MANIFEST.in
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("txsipua/sip/_speedups.c", "txsipua/sip/_speedups_via.h", "txsipua/py.typed", "CHANGELOG.md",
                   "twisted/plugins/txsipua_plugin.py", "docs/conf.py", "setup.cfg", "pyproject.toml"):
        assert needed in names, needed
    # the whole test suite (subpackages, conftest files, scenarios, corpus), the samples the docs
    # tests run and the benchmarks the smoke test runs: the tests run from the sdist
    shipped = {p.relative_to(src).as_posix() for top in ("tests", "benchmarks", "docs/samples")
               for p in (src / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert shipped - names == set(), sorted(shipped - names)
    assert {"tests/cli/conftest.py", "tests/sip/corpus/expected.json", "tests/interop/scenarios/client_call_auth.xml",
            "docs/samples/first_call.sh", "tox.ini"} <= names
    unpacked = tmp_path / "unpacked"
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    [top] = unpacked.iterdir()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sip/test_corpus.py",
                          "tests/test_docs.py::test_code_samples_only_come_from_files_that_exist"],
                         cwd=top, capture_output=True, text=True, timeout=300, env=dict(env, PYTHONPATH=str(top)),
                         check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with zipfile.ZipFile(wheel) as whl:
        files = set(whl.namelist())
        metadata = email.message_from_bytes(whl.read(next(n for n in files if n.endswith(".dist-info/METADATA"))))
    assert "txsipua/py.typed" in files and "twisted/plugins/txsipua_plugin.py" in files
    if shutil.which("gcc") or os.environ.get("CI"):  # the accelerator, for the stable ABI
        assert wheel.name.endswith("-cp311-abi3-linux_x86_64.whl") or "-abi3-" in wheel.name, wheel.name
        assert "txsipua/sip/_speedups.abi3.so" in files, sorted(files)
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in files)
    assert metadata["Name"] == "txsipua" and metadata["Requires-Python"] == ">=3.11"
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"tls", "docs", "audio", "srtp", "ws", "opus", "test"} <= extras, extras
    assert any(r.startswith("Twisted") for r in metadata.get_all("Requires-Dist") or [])
    assert "Typing :: Typed" in (metadata.get_all("Classifier") or [])
    assert metadata["License"] == "MIT" and metadata["Description-Content-Type"] == "text/markdown"

    for artifact in (wheel, sdist):
        _install_and_run(tmp_path / f"venv-{artifact.suffix.strip('.')}", artifact, env)


def _install_and_run(env_dir: Path, artifact: Path, env: dict[str, str]) -> None:
    """pip-install ``artifact`` into a new environment; ``txsipua demo`` passes, twist lists the plugin."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", "--no-build-isolation", str(artifact)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert (Path(site) / "twisted" / "plugins" / "txsipua_plugin.py").exists()
    run_env = dict(env, PYTHONNOUSERSITE="1")
    cwd = env_dir.parent
    where = subprocess.run([str(python), "-c", "import txsipua; print(txsipua.__file__)"], cwd=cwd,
                           capture_output=True, text=True, env=run_env, check=True).stdout.strip()
    assert where.startswith(site), where
    demo = subprocess.run([str(env_dir / "bin" / "txsipua"), "demo", "--hold", "0.2"], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=run_env, check=False)
    assert demo.returncode == 0 and "PASS" in demo.stdout, demo.stdout + demo.stderr
    twist = subprocess.run([str(python), "-m", "twisted", "--help"], cwd=cwd, capture_output=True, text=True,
                           timeout=60, env=run_env, check=False)
    assert "txsipua" in twist.stdout, twist.stdout
