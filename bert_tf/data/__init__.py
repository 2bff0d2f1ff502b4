"""Readers and writers for the data formats the scripts accept."""
