"""The study engine: grid expansion, run store, runner, tables. Knows nothing about torch."""
