"""Only what pyproject.toml cannot say: the folder ``recipes/`` is also the subpackage ``rlnf.recipes``.

One copy of the recipes and their YAMLs serves ``python recipes/grpo_asr.py`` in a checkout and ``rlnf grpo`` after
``pip install`` (editable or not). pyproject's package finder cannot add a package that lives outside ``rlnf/``.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["rlnf", "rlnf.*"]), "rlnf.recipes"],
    package_dir={"rlnf.recipes": "recipes"},
)
