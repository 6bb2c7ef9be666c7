"""The recipe: its typed schema (``schema``), YAML loading and dotted overrides (``loading``) and one-line errors
(``errors``). Torch-free: ``ablate plan`` and ``--help`` import it and nothing heavy."""
