"""Shared pieces of the 7-day revenue service: settings, input schema, sample data."""
