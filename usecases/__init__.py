"""Use cases: what a handler asks for in plain values (decide, erase), answered with an outcome
the handler renders; between handlers and storage, and never touching Telegram."""
