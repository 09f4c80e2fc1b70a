"""Device-side scripts (run.sh / bench.sh) rendered into bundles from the templates in runtime/scripts."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def default_inputs(n_inputs: int) -> str:
    """The bundle's reference inputs as shell words, relative to the script's folder."""
    return " ".join(f'"$here/input_{i}.npy"' for i in range(n_inputs))


def render_scripts(workdir: Path, templates: dict[str, str], subst: dict[str, str]) -> list[str]:
    """Write each template (runtime/scripts/<template>) as workdir/<name>, executable, with @KEY@ substituted."""
    written = []
    for template, name in templates.items():
        text = resources.files("edgecc.runtime").joinpath("scripts", template).read_text()
        for key, value in subst.items():
            text = text.replace(key, value)
        (Path(workdir) / name).write_text(text)
        (Path(workdir) / name).chmod(0o755)
        written.append(name)
    return written
