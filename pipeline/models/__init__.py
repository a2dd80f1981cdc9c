"""News recommendation models, one module each, all behind one contract (`pipeline.models.contract`)."""
