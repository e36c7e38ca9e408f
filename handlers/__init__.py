"""Telegram update handlers: thin adapters between updates, domain rules and storage."""
