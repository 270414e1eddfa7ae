"""Stage 1, cards: the schema, card directories, the index, remote registries, and id/alias resolution."""
