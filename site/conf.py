"""Sphinx configuration of the rendered course (`make site`; tools/build_site.py lays out the sources).

Sphinx with myst-nb: both install from PyPI and build offline (Jupyter Book 2's mystmd fetches
its page templates from the web at build time). myst-nb renders the notebooks that
tools/build_site.py has already executed on a bare install (nb_execution_mode "off"), so the
outputs shown are a learner's.
"""

project = "BIDS-Net inpainting course"
author = "the BIDS-Net course contributors"
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"
exclude_patterns = ["_build"]
html_theme = "sphinx_book_theme"
html_title = project
html_copy_source = False  # the executed notebooks are large; the pages are what is read
html_theme_options = {"show_toc_level": 2}
# The notebooks link to one another and to repository files (data/, bidsnet_lib/) that the site
# does not hold; those stay plain links.
suppress_warnings = ["myst.xref_missing", "myst.header"]
