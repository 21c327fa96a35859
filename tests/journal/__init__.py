"""Tests of flowmetal.journal: the journal store, its readers and the job lock."""
