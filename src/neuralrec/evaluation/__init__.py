"""Evaluation: rating and ranking metrics on the protocols papers use."""
