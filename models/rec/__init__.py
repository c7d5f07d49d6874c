"""Recommendation: count baselines, the SASRec model, their blend and the evaluation protocol."""
