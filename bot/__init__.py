"""rentan-bot: Telegram intake for a city-paid BPJS Ketenagakerjaan programme."""

__version__ = "0.1.0"
