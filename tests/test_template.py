"""The cookiecutter template at the repository root: render, install, serve, run its tests.

One render with custom values is installed once per module (``pip install --target`` into a
temporary directory put on ``PYTHONPATH`` of subprocesses: the shared environment is never
touched) and shared by the tests that need an installed package.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from fixtures.jupyter_server import JupyterServer, start_jupyter_server, stop_jupyter_server

from jupyter_ai_vision.testing import images_in, text_in

pytestmark = [pytest.mark.jupyter_ai_2, pytest.mark.server]

REPO = Path(__file__).resolve().parents[1]
MODEL = "openai/gpt-4o"

CUSTOM = {
    "project_name": "Jupyter AI Plot Doctor",
    "author_name": 'Ada "Countess" Lovelace',
    "description": "Finds what is wrong in C:\\plots and ünïcode charts",
    "author_email": "ada@example.org",
    "provider_id": "plot-doctor",
    "provider_name": "Plot Doctor",
    "slash_id": "diagnose",
    "slash_help": 'Diagnose the "plots" in the notebook',
}


@pytest.fixture(scope="module", autouse=True)
def cookiecutter_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Cookiecutter's user config in a temporary directory: its replay files stay out of HOME."""
    home = tmp_path_factory.mktemp("cookiecutter")
    config = home / "config.yaml"
    config.write_text(f"replay_dir: {home / 'replay'}\ncookiecutters_dir: {home / 'templates'}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COOKIECUTTER_CONFIG", str(config))
        yield config


def render(out: Path, **extra: str) -> Path:
    """Render the template without prompts; returns the generated project directory."""
    return Path(cookiecutter(str(REPO), no_input=True, extra_context=extra, output_dir=str(out)))


def files_under(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def expected_files(package: str) -> set[str]:
    return {
        "README.md",
        "pyproject.toml",
        f"{package}/__init__.py",
        f"{package}/provider.py",
        f"{package}/slash_command.py",
        "tests/conftest.py",
        "tests/test_provider.py",
        "tests/test_slash_command.py",
        "tests/test_completion.py",
    }


def entry_points(project: Path) -> dict[str, dict[str, str]]:
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    return meta["project"]["entry-points"]


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run ``cmd``; on failure, fail the test with its output (the last 3000 characters)."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}"
    return output


# ----- rendering ---------------------------------------------------------------------------
def test_default_render_gives_exactly_the_expected_files(tmp_path: Path) -> None:
    project = render(tmp_path)
    assert project.name == "jupyter-ai-chart-critic"
    assert files_under(project) == expected_files("jupyter_ai_chart_critic")
    assert entry_points(project) == {
        "jupyter_ai.model_providers": {
            "chart-critic": "jupyter_ai_chart_critic.provider:ChartCriticProvider"
        },
        "jupyter_ai.chat_handlers": {
            "critique": "jupyter_ai_chart_critic.slash_command:ChartCriticChatHandler"
        },
    }
    for path in project.rglob("*"):
        text = path.read_text() if path.is_file() else ""
        assert "{{" not in text and "cookiecutter" not in text, path
        if path.suffix == ".py":
            compile(text, str(path), "exec")  # valid Python after rendering
    assert_lint_clean(project)


def assert_lint_clean(project: Path, *, formatted: bool = True) -> None:
    """The generated code passes ruff with this project's rules (a template users start from).
    Formatting depends on the answers (quotes, lengths): checked for the defaults only."""
    ruff = str(Path(sys.executable).with_name("ruff"))
    rules = ["--isolated", "--line-length", "100", "--target-version", "py311"]
    run(
        [ruff, "check", *rules, "--select", "E,F,W,I,B,UP,SIM", "."],
        env=dict(os.environ),
        cwd=project,
    )
    if formatted:
        run([ruff, "format", "--check", *rules, "."], env=dict(os.environ), cwd=project)


def test_custom_values_reach_every_file(generated: Path) -> None:
    assert generated.name == "jupyter-ai-plot-doctor"
    assert files_under(generated) == expected_files("jupyter_ai_plot_doctor")
    meta = tomllib.loads((generated / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "jupyter-ai-plot-doctor"
    assert meta["authors"] == [{"name": 'Ada "Countess" Lovelace', "email": "ada@example.org"}]
    assert meta["description"] == CUSTOM["description"]
    assert meta["entry-points"]["jupyter_ai.model_providers"] == {
        "plot-doctor": "jupyter_ai_plot_doctor.provider:PlotDoctorProvider"
    }
    assert meta["entry-points"]["jupyter_ai.chat_handlers"] == {
        "diagnose": "jupyter_ai_plot_doctor.slash_command:PlotDoctorChatHandler"
    }
    assert_lint_clean(generated, formatted=False)
    readme = (generated / "README.md").read_text()
    assert "/diagnose" in readme and "plot-doctor" in readme and "Plot Doctor" in readme
    source = (generated / "jupyter_ai_plot_doctor" / "slash_command.py").read_text()
    assert 'Diagnose the \\"plots\\" in the notebook' in source  # quotes escaped, not broken


# ----- invalid answers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            {"slash_id": "my-look"},
            "ERROR: slash_id 'my-look' is not valid: a slash command may contain only ASCII "
            "letters, digits and underscores (e.g. 'my_look')",
        ),
        (
            {"slash_id": "look at"},
            "ERROR: slash_id 'look at' is not valid: a slash command may contain only ASCII "
            "letters, digits and underscores (e.g. 'look_at')",
        ),
        (
            {"slash_id": "see"},
            "ERROR: slash_id 'see' is already a built-in slash command (/see): pick another id",
        ),
        (
            {"package_name": "3d_plots"},
            "ERROR: package_name '3d_plots' is not a Python identifier: use ASCII letters, "
            "digits and underscores, not starting with a digit",
        ),
        (
            {"package_name": "plot-doctor"},
            "ERROR: package_name 'plot-doctor' is not a Python identifier: use ASCII letters, "
            "digits and underscores, not starting with a digit (e.g. 'plot_doctor')",
        ),
        (
            {"package_name": "class"},
            "ERROR: package_name 'class' is not a Python identifier: use ASCII letters, "
            "digits and underscores, not starting with a digit",
        ),
        (
            {"package_name": "json"},
            "ERROR: package_name 'json' would shadow an existing module: pick another name",
        ),
        (
            {"provider_id": "plot doctor"},
            "ERROR: provider_id 'plot doctor' is not valid: use ASCII letters, digits, '-' and "
            "'_', starting with a letter or digit (no ':' or spaces) (e.g. 'plot_doctor')",
        ),
        (
            {"provider_id": "vision"},
            "ERROR: provider_id 'vision' is already used by a built-in provider: pick another id",
        ),
        (
            {"project_slug": "-bad-", "provider_id": "bad"},
            "ERROR: project_slug '-bad-' is not a valid distribution name: use letters, digits, "
            "'-', '_' and '.', starting and ending with a letter or digit",
        ),
        (
            {"author_email": "nobody"},
            "ERROR: author_email 'nobody' is not an e-mail address (e.g. 'you@example.com')",
        ),
        (
            {"slash_help": "two\nlines"},
            "ERROR: slash_help 'two\\nlines' must be a single non-empty line",
        ),
    ],
)
def test_invalid_answers_stop_generation_with_one_clear_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], message: str
) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, **answers)
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR: ")]
    assert errors == [message]
    assert list(tmp_path.iterdir()) == []  # nothing was generated


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, slash_id="a-b", provider_id="x:y", package_name="9")
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR: ")]
    assert [e.split()[1] for e in errors] == ["package_name", "provider_id", "slash_id"]


# ----- the installed package ---------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(cookiecutter_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("render"), **CUSTOM)


@pytest.fixture(scope="module")
def installed(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The generated package built and installed into its own directory (offline, no deps):
    the environment for subprocesses that see it beside everything in this environment."""
    target = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(generated)],
        env=env,
        cwd=generated.parent,
    )  # fmt: skip
    paths = [str(target), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


@pytest.fixture(scope="module")
def generated_suite(
    installed: dict[str, str], generated: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The generated package's own tests, started in the background as soon as it is installed
    (they mostly wait for imports: they overlap with the server tests)."""
    log = tmp_path_factory.mktemp("generated-suite") / "pytest.log"
    # pytest's own script (not ``python -m pytest``), so the installed copy is imported, not
    # the sources in the working directory.
    pytest_bin = str(Path(sys.executable).with_name("pytest"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [pytest_bin, "-q", "-p", "no:cacheprovider"],
            cwd=generated,
            env=installed,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield proc, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


_PROBE = """
import json
from importlib.metadata import entry_points
from jupyter_ai_vision.hosts.jupyter_ai_2.provider import VisionProvider
from jupyter_ai_vision.hosts.jupyter_ai_2.see import SeeChatHandler
out = {}
for group, base in (("jupyter_ai.model_providers", VisionProvider),
                    ("jupyter_ai.chat_handlers", SeeChatHandler)):
    for ep in entry_points(group=group, name=%r if group.endswith("providers") else %r):
        cls = ep.load()
        out[group] = {"module": cls.__module__, "subclass": issubclass(cls, base),
                      "id": cls.id, "name": cls.name,
                      "slash_id": getattr(getattr(cls, "routing_type", None), "slash_id", None),
                      "dist": ep.dist.name}
print(json.dumps(out))
"""


def test_entry_points_load_in_a_fresh_interpreter(
    installed: dict[str, str], generated_suite: Any, tmp_path: Path
) -> None:
    code = _PROBE % (CUSTOM["provider_id"], CUSTOM["slash_id"])
    found = json.loads(run([sys.executable, "-c", code], env=installed, cwd=tmp_path))
    assert found == {
        "jupyter_ai.model_providers": {
            "module": "jupyter_ai_plot_doctor.provider",
            "subclass": True,
            "id": "plot-doctor",
            "name": "Plot Doctor",
            "slash_id": None,
            "dist": "jupyter-ai-plot-doctor",
        },
        "jupyter_ai.chat_handlers": {
            "module": "jupyter_ai_plot_doctor.slash_command",
            "subclass": True,
            "id": "diagnose",
            "name": "Plot Doctor",
            "slash_id": "diagnose",
            "dist": "jupyter-ai-plot-doctor",
        },
    }


@pytest.fixture(scope="module")
def module_server(
    installed: dict[str, str],
    generated_suite: Any,
    model_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JupyterServer]:
    """A real Jupyter server whose chat model is the generated provider -> model_server."""
    language_model = f"{CUSTOM['provider_id']}:{MODEL}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", installed["PYTHONPATH"])  # read once, when the server starts
        server = start_jupyter_server(
            tmp_path_factory.mktemp("module-server"),
            model_server.url,
            language_model=language_model,
            model_parameters={
                language_model: {"api_base": model_server.url, "api_key": "sk-test-key"}
            },
            timeout=240,  # a busy 2-core machine has been seen taking over 90 s to start it
        )
    yield server
    stop_jupyter_server(server)


@pytest.mark.server
def test_provider_and_slash_command_listed_beside_builtins(module_server: JupyterServer):
    headers = module_server.headers()
    with httpx.Client(base_url=module_server.url, headers=headers, trust_env=False) as client:
        providers = {p["id"]: p for p in client.get("/api/ai/providers").json()["providers"]}
        commands = client.get("/api/ai/chats/slash_commands").json()["slash_commands"]
    assert {"plot-doctor", "vision"} <= providers.keys()
    assert providers["plot-doctor"]["name"] == "Plot Doctor"
    assert len(providers) > 2  # jupyter-ai's own providers are still there
    by_id = {c["slash_id"]: c["description"] for c in commands}
    assert by_id["diagnose"] == 'Diagnose the "plots" in the notebook'
    assert {"see", "ask", "help"} <= by_id.keys()


def _figure_cell() -> dict[str, Any]:
    """A code cell whose output is a 48×48 blue PNG (as a kernel would have stored it)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (20, 60, 200)).save(buffer, format="PNG")
    data = {"image/png": base64.b64encode(buffer.getvalue()).decode(), "text/plain": "<Figure>"}
    return {
        "cell_type": "code",
        "id": "figure",
        "execution_count": 1,
        "metadata": {},
        "source": "plt.imshow(blue)",
        "outputs": [{"output_type": "display_data", "data": data, "metadata": {}}],
    }


@pytest.mark.server
async def test_slash_command_answers_in_the_chat_with_its_own_prompt(
    module_server: JupyterServer, model_server: Any
) -> None:
    module_server.write_notebook("plots.ipynb", ["# md: A blue square", _figure_cell()])
    model_server.set_reply("Label the axes.")
    async with module_server.chat() as chat:
        reply = await chat.ask("/diagnose plots.ipynb what is wrong with it?")
    assert reply.complete and reply.text.startswith("Label the axes.")
    (request,) = model_server.chat_requests()
    system = request["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are a data-visualisation reviewer")
    text = text_in(request)
    assert "what is wrong with it?" in text and "/diagnose" not in text
    (figure,) = images_in(request)
    assert figure.size == (48, 48)


def test_generated_package_tests_pass(generated_suite: tuple[subprocess.Popen[bytes], Path]):
    proc, log = generated_suite
    returncode = proc.wait(timeout=300)
    output = log.read_text(errors="replace")
    assert returncode == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, output
