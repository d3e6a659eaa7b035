"""Detection and classification as the configs describe them: build the data and the model, train, evaluate."""
