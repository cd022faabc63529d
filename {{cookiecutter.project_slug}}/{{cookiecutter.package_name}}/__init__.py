# {{ cookiecutter.project_name }}
"""A vision-enabled Jupyter AI module: a model provider and a slash command.

Jupyter AI loads both through the entry points declared in pyproject.toml; importing this
package stays cheap (nothing heavy is imported at module level).
"""

__version__ = "0.1.0"
