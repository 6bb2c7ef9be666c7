"""The recipe: its typed schema (``schema``), YAML files (``yaml_io``), dotted overrides (``overrides``) and one-line
errors (``errors``). Torch-free: ``ablate plan`` and ``--help`` import it and nothing heavy."""
