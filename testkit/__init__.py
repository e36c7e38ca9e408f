"""What tests and benchmarks share: synthetic people, the emulator harness, a throwaway
PostgreSQL."""
