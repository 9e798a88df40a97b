"""Inline completion: prompts, generation and clean-up of suggestions."""
