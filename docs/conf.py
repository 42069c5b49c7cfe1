"""Sphinx configuration of the ruotools documentation.

Build offline, warnings as errors (as CI does)::

    pip install -e ".[doc]"
    sphinx-build -W -b html docs docs/_build/html

The tutorials are the notebooks in ``tutorials/`` (committed with their outputs; never executed here,
``nb_execution_mode = "off"``). Sphinx reads sources only below ``docs/``, so each build copies them to
``docs/tutorials/`` (git-ignored, no symlinks). Links to the Python, scverse and torch documentation
(intersphinx) need the network: they are on when ``RUOTOOLS_DOCS_INTERSPHINX=1`` or on Read the Docs,
and off otherwise, so an offline build does not fail on unreachable inventories.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from datetime import datetime
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# sphinx-autodoc-typehints 3.6 calls an API that Sphinx 9 deprecates: noise, not a problem of these docs
warnings.filterwarnings("ignore", message=r".*set_application' is deprecated", category=DeprecationWarning)

# -- project ----------------------------------------------------------------------------------------------

project = "ruotools"
author = "The ruotools developers"
copyright = f"{datetime.now():%Y}, {author}"
release = _version("ruotools")
version = ".".join(release.split(".")[:2])

# -- general ----------------------------------------------------------------------------------------------

extensions = [
    "myst_nb",  # Markdown (MyST) pages and the tutorial notebooks; loads myst_parser
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",  # after napoleon
    "sphinx_copybutton",
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
default_role = "literal"
pygments_style = "default"
smartquotes_action = "qe"  # keep "--" in command-line options (no en dash)

# -- MyST and notebooks -----------------------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "amsmath", "html_image"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # notebooks are committed with the outputs of a full run
nb_merge_streams = True
nb_output_stderr = "show"

# -- API reference ----------------------------------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
napoleon_custom_sections = [("Attributes", "params_style")]
typehints_defaults = "braces"
typehints_document_rtype = True
always_document_param_types = False

# -- cross-references to other projects -------------------------------------------------------------------

_INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvelo": ("https://scvelo.readthedocs.io/en/stable/", None),
    "cellrank": ("https://cellrank.readthedocs.io/en/stable/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "ot": ("https://pythonot.github.io/", None),
}
_ONLINE = os.environ.get("RUOTOOLS_DOCS_INTERSPHINX") == "1" or os.environ.get("READTHEDOCS") == "True"
intersphinx_mapping = _INTERSPHINX if _ONLINE else {}
intersphinx_timeout = 30

# -- HTML -------------------------------------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = "ruotools"
html_static_path = ["_static"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "navigation_with_keys": False,
}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# -- tutorials: tutorials/*.ipynb -> docs/tutorials/ ------------------------------------------------------


def _copy_tutorials() -> None:
    src, dst = ROOT / "tutorials", HERE / "tutorials"
    dst.mkdir(exist_ok=True)
    wanted = {path.name for path in src.glob("*.ipynb")}
    for stale in dst.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        # copy2 keeps the modification time, so an unchanged notebook is not re-read by an incremental build
        target = dst / name
        if not target.exists() or target.stat().st_mtime != (src / name).stat().st_mtime:
            shutil.copy2(src / name, target)


_copy_tutorials()

# -- the README, CHANGELOG and benchmark tables are included; their links are to repository paths ----------

#: repository path in a link of an included file -> the page of these docs that shows it
_LINKS = {
    "benchmarks/README.md": "benchmarks.md",
    "CHANGELOG.md": "changelog.md",
    "LICENSE": "license.md",
    "docs/_static/gallery/": "gallery.md",
    "tutorials/": "tutorials.md",
}
_LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def _rewrite_links(app, relative_path, parent_docname, content) -> None:
    """Point the repository-relative links of an included Markdown file at the matching doc pages."""
    if Path(relative_path).suffix != ".md":
        return

    def repl(match: re.Match) -> str:
        target, anchor = match["target"], match["anchor"] or ""
        if "://" in target:
            return match[0]
        if target in _LINKS:
            return f"]({_LINKS[target]}{anchor})"
        if target.startswith("tutorials/") and target.endswith(".ipynb"):  # copied to docs/tutorials/
            return f"]({target}{anchor})"
        return match[0]

    content[0] = _LINK.sub(repl, content[0])


def setup(app):
    app.connect("include-read", _rewrite_links)
