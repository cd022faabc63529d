"""Validate the answers before cookiecutter writes anything: one clear line per problem, exit 1.

Cookiecutter renders this file with Jinja first. Each answer arrives as a JSON string inside
a raw string, so that quotes, backslashes or newlines in an answer cannot break this script
(JSON escapes every quote, and a raw string does not end at an escaped quote).
"""

from __future__ import annotations

import json
import keyword
import re
import sys

ANSWERS = {
    "project_name": json.loads(r""" {{ cookiecutter.project_name | jsonify }} """),
    "description": json.loads(r""" {{ cookiecutter.description | jsonify }} """),
    "project_slug": json.loads(r""" {{ cookiecutter.project_slug | jsonify }} """),
    "package_name": json.loads(r""" {{ cookiecutter.package_name | jsonify }} """),
    "provider_id": json.loads(r""" {{ cookiecutter.provider_id | jsonify }} """),
    "provider_name": json.loads(r""" {{ cookiecutter.provider_name | jsonify }} """),
    "slash_id": json.loads(r""" {{ cookiecutter.slash_id | jsonify }} """),
    "slash_help": json.loads(r""" {{ cookiecutter.slash_help | jsonify }} """),
    "author_email": json.loads(r""" {{ cookiecutter.author_email | jsonify }} """),
}

# Slash commands that Jupyter AI and jupyter-ai-vision already register: a module that reused
# one would silently replace it.
BUILTIN_SLASH_IDS = {"ask", "clear", "default", "export", "fix", "generate", "help", "learn", "see"}

# Provider ids already taken by jupyter-ai-magics 2.x and jupyter-ai-vision: Jupyter AI keeps
# only the last provider registered under an id.
BUILTIN_PROVIDER_IDS = {
    "ai21", "anthropic-chat", "azure", "azure-chat-openai", "bedrock", "bedrock-chat",
    "bedrock-custom", "cohere", "gemini", "gpt4all", "huggingface_hub", "mistralai",
    "nvidia-chat", "ollama", "openai", "openai-chat", "openai-chat-custom", "openai-custom",
    "openrouter", "qianfan", "sagemaker-endpoint", "togetherai", "vertexai", "vision",
}  # fmt: skip

# Import names the generated package must not shadow.
TAKEN_PACKAGES = {"jupyter_ai", "jupyter_ai_magics", "jupyter_ai_vision", "tests"}

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DIST_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")  # PEP 508
PROVIDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SLASH_ID = re.compile(r"[A-Za-z0-9_]+")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _suggest(value: str, bad: str) -> str:
    """A corrected spelling of ``value``: runs of ``bad`` characters become underscores."""
    fixed = re.sub(bad, "_", value.strip()).strip("_")
    return f" (e.g. '{fixed}')" if fixed and fixed != value else ""


def check_project_slug(slug: str) -> str | None:
    if not DIST_NAME.fullmatch(slug):
        return (
            f"project_slug {slug!r} is not a valid distribution name: use letters, digits, "
            "'-', '_' and '.', starting and ending with a letter or digit"
        )
    return None


def check_package_name(name: str) -> str | None:
    if not IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
        return (
            f"package_name {name!r} is not a Python identifier: use ASCII letters, digits and "
            f"underscores, not starting with a digit{_suggest(name, r'[^A-Za-z0-9_]+')}"
        )
    if name in TAKEN_PACKAGES or name in sys.stdlib_module_names:
        return f"package_name {name!r} would shadow an existing module: pick another name"
    return None


def check_provider_id(pid: str) -> str | None:
    if not PROVIDER_ID.fullmatch(pid):
        return (
            f"provider_id {pid!r} is not valid: use ASCII letters, digits, '-' and '_', starting "
            f"with a letter or digit (no ':' or spaces){_suggest(pid, r'[^A-Za-z0-9_-]+')}"
        )
    if pid in BUILTIN_PROVIDER_IDS:
        return f"provider_id {pid!r} is already used by a built-in provider: pick another id"
    return None


def check_slash_id(sid: str) -> str | None:
    if not SLASH_ID.fullmatch(sid):
        return (
            f"slash_id {sid!r} is not valid: a slash command may contain only ASCII letters, "
            f"digits and underscores{_suggest(sid, r'[^A-Za-z0-9_]+')}"
        )
    if sid in BUILTIN_SLASH_IDS:
        return f"slash_id {sid!r} is already a built-in slash command (/{sid}): pick another id"
    return None


def check_one_line(key: str, value: str) -> str | None:
    if not value.strip() or "\n" in value or "\r" in value:
        return f"{key} {value!r} must be a single non-empty line"
    return None


def check_email(email: str) -> str | None:
    if not EMAIL.fullmatch(email):
        return f"author_email {email!r} is not an e-mail address (e.g. 'you@example.com')"
    return None


def problems(answers: dict[str, str]) -> list[str]:
    """Every problem with the answers, one line each (empty when all are fine)."""
    found = [
        check_one_line("project_name", answers["project_name"]),
        check_one_line("description", answers["description"]),
        check_project_slug(answers["project_slug"]),
        check_package_name(answers["package_name"]),
        check_provider_id(answers["provider_id"]),
        check_one_line("provider_name", answers["provider_name"]),
        check_slash_id(answers["slash_id"]),
        check_one_line("slash_help", answers["slash_help"]),
        check_email(answers["author_email"]),
    ]
    return [p for p in found if p]


def main() -> int:
    found = problems(ANSWERS)
    for problem in found:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
