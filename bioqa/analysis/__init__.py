"""Sweep aggregation and reports derived from run directories."""
