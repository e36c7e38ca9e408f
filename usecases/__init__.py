"""Use cases between handlers and storage: plain values in, outcomes out; no Telegram."""
