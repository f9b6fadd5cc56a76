"""Helpers the tests share: sample inputs, settings, the private stack, fault tools."""
