"""SAN trainer: SA-Enc / SA-Dec model, losses, sampler, texture-shard data, engine, evaluation."""
