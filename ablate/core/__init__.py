"""Config-free helpers every layer may use: errors, files, hashing, locks, the machine, registries, text."""
