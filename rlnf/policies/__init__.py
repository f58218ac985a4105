"""How each policy family meets audio: features, sampling, log-probabilities and greedy decoding."""
