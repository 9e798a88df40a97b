"""Model tiers: the registry of published ternary checkpoints, what this machine has and can run, which model
serves which task, the models held in memory, and downloads on request."""
