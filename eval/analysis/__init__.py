"""What recorded runs mean: metrics (rates, accuracies) and stage diagnosis."""
