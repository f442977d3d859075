"""The plug-in path end to end (issue 17 item 1, must show): examples/plugin-provider is pip-installed
beside keyform into a fresh virtual environment (both from wheels built from this checkout, offline:
--no-index, --no-build-isolation), then in that environment `keyform providers` lists it with its
package and version, and the example's own tests pass there: keyform's conformance kit against its
emulator, and validate/plan/apply through the keyform CLI.

The fresh environment borrows only keyform's third-party dependencies (httpx, click, pytest, ...)
from the running interpreter's site-packages through a .pth line; keyform and the plug-in are
installed into it for real (their dist-info and entry points are the environment's own)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-provider"


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("plugin")
    # copies, so building writes no build/ or egg-info into the checkout
    src = base / "keyform-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():  # (a missing LICENSE fails the license test below, not every test here)
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    plugin = shutil.copytree(EXAMPLE, base / "plugin-provider", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", ".pytest_cache"))
    wheels = base / "wheels"
    # --check-build-dependencies: an environment whose setuptools is older than [build-system] asks
    # (77, for the PEP 639 license string) fails saying so, not deep in setuptools' validation;
    # -v: the build backends' own output (their warnings) is kept, for the metadata test below
    built = run(sys.executable, "-m", "pip", "wheel", "-v", "--no-index", "--no-deps", "--no-build-isolation",
                "--check-build-dependencies", "-w", wheels, src, plugin)
    (base / "build.log").write_text(built.stdout + built.stderr)
    assert built.returncode == 0, built.stderr[-3000:]
    # keyform's sdist too (setuptools' own backend, ~0.3 s): what the license test below opens
    sdist = run(sys.executable, "-c", "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])",
                base / "sdist", cwd=src)
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    env_dir = base / "venv"
    made = run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", env_dir)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    # (clean_env: a PYTHONPATH naming a checkout's src/ would make keyform look installed there already)
    installed = run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--no-deps",
                    *sorted(wheels.glob("*.whl")), env=clean_env())
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_the_wheels_declare_an_spdx_license_and_build_without_a_deprecation_warning(venv: Path) -> None:
    """PEP 639: `license = "Apache-2.0"` in [project] becomes License-Expression in the wheels' metadata;
    the TOML-table form it replaces made setuptools warn that such builds stop being supported."""
    log = (venv.parent / "build.log").read_text()
    assert "Successfully built" in log, log[-2000:]
    # (a SetuptoolsDeprecationWarning, which pip shows as a BuildBackendWarning without build isolation)
    assert "DeprecationWarning" not in log and "BuildBackendWarning" not in log, log[-4000:]
    for name in ("keyform", "keyform_acme"):
        (wheel,) = (venv.parent / "wheels").glob(f"{name}-0.1.0-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            metadata = archive.read(f"{name}-0.1.0.dist-info/METADATA").decode()
        headers = metadata.split("\n\n", 1)[0].splitlines()
        assert "License-Expression: Apache-2.0" in headers, headers
        assert not any(line.startswith("License:") for line in headers), headers


# sha256 of the Apache License 2.0 as the ASF publishes it (apache.org/licenses/LICENSE-2.0.txt, 11,358
# bytes; Debian's /usr/share/common-licenses/Apache-2.0 is the same bytes)
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_wheel_and_sdist_carry_the_apache_license_text(venv: Path) -> None:
    """`license = "Apache-2.0"` names a license whose section 4(a) asks for its text to go with every
    copy: the checkout had no LICENSE, so neither the wheel nor the sdist carried one. LICENSE is
    the ASF's text, unmodified; the wheel has it in its dist-info's licenses/ and the sdist at its
    root, each named by a License-File header."""
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256
    (wheel,) = (venv.parent / "wheels").glob("keyform-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("keyform-0.1.0.dist-info/licenses/LICENSE") == text
        metadata = archive.read("keyform-0.1.0.dist-info/METADATA").decode()
    assert "License-File: LICENSE" in metadata.split("\n\n", 1)[0].splitlines()
    (sdist,) = (venv.parent / "sdist").glob("keyform-0.1.0.tar.gz")
    with tarfile.open(sdist) as archive:
        assert read_member(archive, "keyform-0.1.0/LICENSE") == text
        pkg_info = read_member(archive, "keyform-0.1.0/PKG-INFO").decode()
    assert "License-File: LICENSE" in pkg_info.split("\n\n", 1)[0].splitlines()


def read_member(archive: tarfile.TarFile, name: str) -> bytes:
    member = archive.extractfile(name)
    assert member is not None, name
    return member.read()


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def test_keyform_providers_lists_the_installed_plugin(venv: Path, tmp_path: Path) -> None:
    res = run(venv / "bin" / "keyform", "providers", cwd=tmp_path, env=clean_env())
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines() if line.startswith("  ")}
    assert "keyform-acme 0.1.0" in rows["acme"] and "keyform-acme 0.1.0" in rows["acme-vault"]
    assert "built-in" in rows["questra"] and "built-in" in rows["dotenv"]
    # keyform is the environment's own install, not this checkout
    where = run(venv / "bin" / "python", "-c", "import keyform; print(keyform.__file__)", env=clean_env())
    assert str(venv) in where.stdout


# the CLI in process, then whether any module of the plug-in was imported
PROBE = ("import sys\nfrom keyform.cli import main\ntry:\n    main(sys.argv[1:], prog_name='keyform')\n"
         "except SystemExit:\n    pass\n"
         "print('PLUGIN LOADED' if any(m.startswith('keyform_acme') for m in sys.modules) else 'NO PLUGIN')")


def test_version_and_a_builtin_validate_load_no_plugin(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "keyform.yaml").write_text(
        "version: 1\nproviders:\n  q: {type: questra, token: {env: T}, org_id: o}\n"
        "sinks:\n  env: {type: dotenv, path: .env}\nkeys:\n  k: {provider: q, sink: env}\n")
    for args in (["--version"], ["validate"]):
        res = run(venv / "bin" / "python", "-c", PROBE, *args, cwd=tmp_path, env=clean_env())
        assert res.stdout.strip().endswith("NO PLUGIN"), (args, res.stdout, res.stderr)
    (tmp_path / "keyform.yaml").write_text(
        "version: 1\nproviders:\n  a: {type: acme, base_url: 'http://127.0.0.1:9', token: {env: T}, project: p}\n"
        "keys:\n  k: {provider: a, sink: {use: v, as: K}}\nsinks:\n  v: {type: acme-vault, dir: v}\n")
    res = run(venv / "bin" / "python", "-c", PROBE, "validate", cwd=tmp_path, env=clean_env())
    assert "The manifests are valid" in res.stdout and res.stdout.strip().endswith("PLUGIN LOADED"), res.stdout


# a pytest plug-in for the example's own test run: the kit's FAULT_DEADLINE at 1 s, as in the rest of
# keyform's tests (conftest.kit_fault_deadline; its emulator answers on 127.0.0.1 too)
SHORT_FAULT_DEADLINE = "from keyform.testing import conformance\n\nconformance.FAULT_DEADLINE = 1.0\n"


def test_the_example_passes_its_own_tests_and_the_conformance_kit(venv: Path) -> None:
    plugin = venv.parent / "plugin-provider"
    plugins = venv.parent / "pytest-plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "kf_short_fault_deadline.py").write_text(SHORT_FAULT_DEADLINE)
    res = run(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "kf_short_fault_deadline",
              "tests", cwd=plugin, env={**clean_env(), "PYTHONPATH": str(plugins)})
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "TestAcmeConformance" not in res.stdout or "failed" not in res.stdout
    summary = res.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary and "failed" not in summary, summary
