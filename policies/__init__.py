"""The vastguard CrossGuard policy pack (rules importable as policies.*; the pack entry is __main__.py)."""
