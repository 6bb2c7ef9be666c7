"""Training and evaluation of one resolved recipe (Lightning)."""
